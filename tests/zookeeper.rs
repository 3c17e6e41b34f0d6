//! ZooKeeper discovery on a real ZooKeeper (Debian's package, started by
//! `lab zk up` on a free loopback port with its data in a temp dir): the
//! server command, `lab realserver --register`, the library's registration
//! and children watch, and `lab zk ls`.
//!
//! Each test starts its own ZooKeeper (and stops it), and uses its own
//! znode paths. Without the package the tests print why and pass, unless
//! `LAB_REQUIRE_ZOOKEEPER=1`.

use crate::common::STEP;
use crate::common::process::{LabProcess, lab_command, run_lab};
use crate::common::servers::dead_port;
use crate::common::zookeeper::{READY, Zk, available, registered_realserver, wait_members};

use std::time::{Duration, Instant};

use lab::zk::{self, ZkUrl};

/// How soon a watcher must see a clean registration or deregistration.
const PROMPTLY: Duration = Duration::from_secs(2);

#[tokio::test]
async fn zk_up_becomes_ready_and_stops_cleanly_on_sigterm() {
    let Some(zk) = Zk::start().await else { return };
    let addr = zk.addr;
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert!(zk.dir.join("zoo.cfg").is_file(), "{}", zk.dir.display());
    assert!(zk.dir.join("data").is_dir(), "{}", zk.dir.display());

    // It answers a client: an empty, watchable path.
    let watch = zk::watch_children(&zk.url("/up/test"))
        .await
        .expect("a client reaches the new ZooKeeper");
    assert!(watch.current().is_empty());
    watch.stop();

    let dir = zk.dir.clone();
    let mut process = zk.process;
    let status = process.terminate().await;
    let log = process.log();
    assert!(status.success(), "{status}; stderr:\n{log}");
    assert!(log.contains("ZooKeeper stopped"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
    std::net::TcpListener::bind(addr)
        .unwrap_or_else(|err| panic!("port {} is still taken after the stop: {err}", addr.port()));
}

#[tokio::test]
async fn zk_up_reports_a_port_in_use() {
    if !available() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let addr = taken.local_addr().expect("its address");
    let (status, stderr) = run_lab(&["zk", "up", "--listen", &addr.to_string()]).await;
    assert!(!status.success(), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("port {} is already in use", addr.port())),
        "{stderr}"
    );
    let next = format!("--listen 127.0.0.1:{}", addr.port() + 1);
    assert!(stderr.contains(&next), "{stderr}");
    assert!(!stderr.contains(READY), "{stderr}");
    drop(taken);
}

#[tokio::test]
async fn realserver_registers_its_address_and_sigterm_removes_it_before_draining() {
    let Some(zk) = Zk::start().await else { return };
    let url = zk.url("/realserver/sigterm");
    let mut watch = zk::watch_children(&url).await.expect("watch");

    let (mut lab, addr) = registered_realserver(&url, &["--weight", "7"]).await;
    let name = addr.to_string();
    let members = wait_members(&mut watch, PROMPTLY, "the registration", |m| {
        m.contains_key(&name)
    })
    .await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[&name], format!("http://{addr}/base,7"));

    let status = lab.terminate().await;
    let log = lab.log();
    assert!(status.success(), "{status}; stderr:\n{log}");
    wait_members(&mut watch, PROMPTLY, "the deregistration", |m| m.is_empty()).await;

    // Out of ZooKeeper first, then the drain: proxies stop choosing it first.
    let deregistered = log.find("deregistered").expect("a deregistration line");
    let draining = log
        .find("finishing the requests in flight")
        .expect("a drain line");
    assert!(deregistered < draining, "{log}");

    drop(watch);
    zk.stop().await;
}

#[tokio::test]
async fn a_killed_realserver_leaves_when_its_session_expires() {
    let Some(zk) = Zk::start().await else { return };
    let url = zk.url("/realserver/killed");
    let mut watch = zk::watch_children(&url).await.expect("watch");
    let (mut lab, addr) = registered_realserver(&url, &[]).await;
    let name = addr.to_string();
    wait_members(&mut watch, PROMPTLY, "the registration", |m| {
        m.get(&name) == Some(&format!("http://{addr}/base,1"))
    })
    .await;

    // SIGKILL: no deregistration; only the session's expiry removes the node.
    lab.child.start_kill().expect("SIGKILL the real server");
    let killed = Instant::now();
    lab.exit().await;
    wait_members(&mut watch, Duration::from_secs(10), "the expiry", |m| {
        m.is_empty()
    })
    .await;
    let took = killed.elapsed();
    // The session timeout is 3 s: the node outlives its process about that long.
    assert!(took >= Duration::from_secs(1), "gone after only {took:?}");

    drop(watch);
    zk.stop().await;
}

#[tokio::test]
async fn watch_children_sees_servers_come_change_and_go() {
    let Some(zk) = Zk::start().await else { return };
    let url = zk.url("/watch/lab/realserver");
    let mut watch = zk::watch_children(&url).await.expect("watch");
    assert!(watch.current().is_empty());

    let first = zk::register(&url, "127.0.0.1:2003", "http://127.0.0.1:2003/base,10")
        .await
        .expect("register the first");
    let second = zk::register(&url, "127.0.0.1:2004", "http://127.0.0.1:2004/base,20")
        .await
        .expect("register the second");
    assert_eq!(second.node(), "/watch/lab/realserver/127.0.0.1:2004");
    let members = wait_members(&mut watch, PROMPTLY, "both servers", |m| m.len() == 2).await;
    assert_eq!(members["127.0.0.1:2003"], "http://127.0.0.1:2003/base,10");
    assert_eq!(members["127.0.0.1:2004"], "http://127.0.0.1:2004/base,20");

    // The same name again (a restart before the old session expired):
    // replaced, with the new data.
    let again = zk::register(&url, "127.0.0.1:2004", "http://127.0.0.1:2004/base,5")
        .await
        .expect("register the second again");
    wait_members(&mut watch, PROMPTLY, "the new weight", |m| {
        m.get("127.0.0.1:2004").map(String::as_str) == Some("http://127.0.0.1:2004/base,5")
    })
    .await;
    drop(second); // its session closes; the node is the new session's now

    first.deregister().await.expect("deregister the first");
    let members = wait_members(&mut watch, PROMPTLY, "the first gone", |m| m.len() == 1).await;
    assert!(members.contains_key("127.0.0.1:2004"), "{members:?}");

    again.deregister().await.expect("deregister the second");
    wait_members(&mut watch, PROMPTLY, "both gone", |m| m.is_empty()).await;

    drop(watch);
    zk.stop().await;
}

#[tokio::test]
async fn a_watch_on_a_path_that_does_not_exist_yet_sees_the_first_registration() {
    let Some(zk) = Zk::start().await else { return };
    let url = zk.url("/not/yet/there");
    let mut watch = zk::watch_children(&url)
        .await
        .expect("watch a missing path");
    assert!(watch.current().is_empty());

    let registration = zk::register(&url, "127.0.0.1:2013", "http://127.0.0.1:2013/base,1")
        .await
        .expect("register, creating the parents");
    let members = wait_members(&mut watch, PROMPTLY, "the first registration", |m| {
        !m.is_empty()
    })
    .await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members["127.0.0.1:2013"], "http://127.0.0.1:2013/base,1");

    registration.deregister().await.expect("deregister");
    wait_members(&mut watch, PROMPTLY, "the node gone", |m| m.is_empty()).await;
    drop(watch);
    zk.stop().await;
}

#[tokio::test]
async fn registration_and_watch_survive_a_zookeeper_restart() {
    let Some(zk) = Zk::start().await else { return };
    let addr = zk.addr;
    let url = zk.url("/restart/realserver");
    let mut watch = zk::watch_children(&url).await.expect("watch");
    let registration = zk::register(&url, "127.0.0.1:2023", "http://127.0.0.1:2023/base,3")
        .await
        .expect("register");
    wait_members(&mut watch, PROMPTLY, "the registration", |m| m.len() == 1).await;

    // ZooKeeper goes away (and its data with it): the watch keeps the last set.
    assert!(zk.stop().await.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watch.current().len(),
        1,
        "the last set is kept while ZooKeeper is away"
    );

    // A new, empty ZooKeeper on the same port: the old sessions are unknown
    // there, so both sides open new ones; the registration comes back.
    let mut process = LabProcess::spawn(&["zk", "up", "--listen", &addr.to_string()]);
    process.addr_after(READY).await;
    let deadline = Instant::now() + STEP;
    loop {
        let listed = zk::ls::list(&url).await.expect("list the new ZooKeeper");
        let entries = listed.unwrap_or_default();
        if entries.iter().any(|e| e.name == "127.0.0.1:2023") {
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(entries[0].data, "http://127.0.0.1:2023/base,3");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not registered again within {STEP:?}: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(watch.current().len(), 1, "{:?}", watch.current());

    // The watch follows the new ZooKeeper: a deregistration there is seen.
    registration.deregister().await.expect("deregister");
    wait_members(&mut watch, STEP, "the node gone", |m| m.is_empty()).await;
    drop(watch);
    assert!(process.terminate().await.success(), "{}", process.log());
}

#[tokio::test]
async fn zk_ls_prints_the_registered_servers() {
    let Some(zk) = Zk::start().await else { return };
    let url = zk.url("/ls/realserver");
    let registration = zk::register(&url, "127.0.0.1:2033", "http://127.0.0.1:2033/base,4")
        .await
        .expect("register");

    let stdout = zk_ls(&url).await;
    assert!(stdout.contains(&format!("{url}: 1 child")), "{stdout}");
    assert!(stdout.contains("127.0.0.1:2033"), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:2033/base,4"), "{stdout}");
    assert!(stdout.contains("ephemeral"), "{stdout}");

    registration.deregister().await.expect("deregister");
    let stdout = zk_ls(&url).await;
    assert!(stdout.contains("0 children"), "{stdout}");

    let missing = zk.url("/ls/nobody/here");
    let stdout = zk_ls(&missing).await;
    assert!(stdout.contains("no such node yet"), "{stdout}");
    zk.stop().await;
}

/// `lab zk ls URL`'s stdout (it must succeed).
async fn zk_ls(url: &ZkUrl) -> String {
    let url = url.to_string();
    let mut command = lab_command(&["zk", "ls", &url]);
    command.stdout(std::process::Stdio::piped());
    let output = tokio::time::timeout(STEP, command.output())
        .await
        .expect("lab zk ls exits")
        .expect("run lab zk ls");
    assert!(
        output.status.success(),
        "{}; stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn bad_zk_urls_say_what_to_write() {
    for bad in [
        "http://127.0.0.1:2181/lab",
        "zk://127.0.0.1:2181",
        "zk://127.0.0.1:0/lab",
    ] {
        let (status, stderr) =
            run_lab(&["realserver", "--addr", "127.0.0.1:0", "--register", bad]).await;
        assert_eq!(status.code(), Some(2), "{bad}: {status}; stderr:\n{stderr}");
        assert!(
            stderr.contains("e.g. zk://127.0.0.1:2181/lab/realserver"),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("Starting httpserver"), "{bad}: {stderr}");
    }
    let (status, stderr) = run_lab(&["zk", "ls", "zk:/127.0.0.1/x"]).await;
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("does not start with zk://"), "{stderr}");

    // --weight means nothing without --register.
    let (status, stderr) = run_lab(&["realserver", "--weight", "3"]).await;
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("--register"), "{stderr}");
}

#[tokio::test]
async fn registering_without_zookeeper_says_how_to_start_one() {
    // A port nothing listens on: bound, then released.
    let port = dead_port().port();
    let url = format!("zk://127.0.0.1:{port}/lab/realserver");
    let (status, stderr) =
        run_lab(&["realserver", "--addr", "127.0.0.1:0", "--register", &url]).await;
    assert!(!status.success(), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach ZooKeeper at 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "start one with `lab zk up --listen 127.0.0.1:{port}`"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let err = zk::watch_children(&url.parse().expect("a zk URL"))
        .await
        .expect_err("nothing to watch");
    assert!(
        format!("{err:#}").contains("cannot reach ZooKeeper"),
        "{err:#}"
    );
}
