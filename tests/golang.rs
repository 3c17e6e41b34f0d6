//! The article's programs in Go (`labs/go/`, issue "Go beside Rust"): the
//! module is formatted, vetted and its tests pass; `lab go list|show|run`
//! work for real; without Go, every command says what to install; and every
//! Go excerpt a sheet quotes is the file's text at the line it cites.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::bounded;
use crate::common::go;
use crate::common::labs::checkout_labs;
use crate::common::process::{LabProcess, lab_command};

fn module() -> PathBuf {
    checkout_labs().join("go")
}

/// `go ARGS` in the module, offline, as `lab` builds it.
fn go_in_module(args: &[&str]) -> std::process::Output {
    Command::new("go")
        .args(args)
        .current_dir(module())
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .output()
        .expect("run go")
}

#[test]
fn the_go_module_is_formatted_vetted_and_its_tests_pass() {
    if !go::available() {
        return;
    }
    let goroot = String::from_utf8(go_in_module(&["env", "GOROOT"]).stdout).unwrap();
    let gofmt = Path::new(goroot.trim()).join("bin").join("gofmt");
    let unformatted = Command::new(&gofmt)
        .arg("-l")
        .arg(".")
        .current_dir(module())
        .output()
        .expect("run gofmt");
    assert!(unformatted.status.success());
    assert_eq!(
        String::from_utf8_lossy(&unformatted.stdout),
        "",
        "files gofmt would change"
    );
    for args in [&["vet", "./..."][..], &["test", "./..."][..]] {
        let output = go_in_module(args);
        assert!(
            output.status.success(),
            "go {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn go_list_names_each_program_with_its_section_flags_and_example() {
    // Without Go the list is still printed (with a note on installing Go).
    let output = lab_command(&["go", "list"])
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "realserver",
        "forward",
        "naive",
        "singlehost",
        "director",
        "transport",
        "balancer",
        "healthcheck",
        "middleware",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing:\n{text}"
        );
    }
    assert!(text.contains("flags: --listen"), "{text}");
    assert!(text.contains("run:   lab go run naive"), "{text}");
}

#[tokio::test]
async fn go_show_prints_the_source_with_line_numbers() {
    let output = lab_command(&["go", "show", "naive"])
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let source = std::fs::read_to_string(module().join("naive/main.go")).unwrap();
    assert!(text.contains("labs/go/naive/main.go"), "{text}");
    for (i, line) in source.lines().enumerate().take(5) {
        let numbered = format!("{:>4}  {line}", i + 1);
        assert!(text.contains(&numbered), "{numbered:?} not in:\n{text}");
    }
    let unknown = lab_command(&["go", "show", "nope"]).output().await.unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("realserver") && err.contains("lab go list"),
        "{err}"
    );
}

/// The article's RealServer, built and run by `lab go run`: it answers as Go
/// does (no Host in the headers map: Go moves it to req.Host) and Ctrl-C
/// stops it with status 0.
#[tokio::test]
async fn go_run_serves_the_articles_realserver_and_stops_on_ctrl_c() {
    if !go::available() {
        return;
    }
    bounded(async {
        let mut run = LabProcess::spawn(&["go", "run", "realserver", "--addr", "127.0.0.1:0"]);
        let addr = run.addr_after("listening on ").await;
        let body = crate::common::client::get(addr, "/abc?x=1").await.text();
        assert!(body.starts_with(&format!("http://{addr}/abc\n")), "{body}");
        assert!(body.contains("RemoteAddr=127.0.0.1:"), "{body}");
        let headers = body
            .lines()
            .find(|l| l.starts_with("headers =map["))
            .unwrap();
        assert!(
            !headers.contains("Host"),
            "Go keeps Host out of req.Header: {headers}"
        );
        run.signal("INT");
        let status = run.exit().await;
        assert!(status.success(), "{status:?}\n{}", run.log());
    })
    .await;
}

/// Without Go, `lab go run` and `lab check --impl go` say which package to
/// install; `lab go list` and `lab check --impl lab` still work.
#[tokio::test]
async fn without_go_the_commands_say_what_to_install() {
    let no_go = |args: &[&str]| {
        let mut command = lab_command(args);
        command
            .env("LAB_GO", "/nonexistent/go")
            .env_remove("LAB_REQUIRE_GO")
            .stdout(std::process::Stdio::piped());
        command
    };
    let run = no_go(&["go", "run", "naive"]).output().await.unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("apt-get install golang-go"), "{err}");
    assert!(err.contains("Without Go"), "{err}");

    let list = no_go(&["go", "list"]).output().await.unwrap();
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("apt-get install golang-go"));

    let labs = crate::common::labs::labs_copy();
    let labs_dir = labs.labs.to_str().unwrap();
    let check = no_go(&["check", "1", "--impl", "go", "--labs-dir", labs_dir])
        .output()
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stderr).contains("apt-get install golang-go"));
}

/// A sheet quotes Go as "`labs/go/NAME/FILE.go:LINE`" followed by a ```go
/// block: the block must be the file's lines from LINE on, exactly.
#[test]
fn every_go_excerpt_in_a_sheet_is_the_files_text_at_the_cited_line() {
    let labs = checkout_labs();
    let mut excerpts = 0;
    let mut errors = Vec::new();
    for entry in std::fs::read_dir(&labs).unwrap() {
        let sheet = entry.unwrap().path().join("README.md");
        let Ok(text) = std::fs::read_to_string(&sheet) else {
            continue;
        };
        for excerpt in go_excerpts(&text) {
            excerpts += 1;
            let file = labs.join(excerpt.path.strip_prefix("labs/").unwrap());
            let Ok(source) = std::fs::read_to_string(&file) else {
                errors.push(format!("{}: no file {}", sheet.display(), excerpt.path));
                continue;
            };
            let lines: Vec<&str> = source.lines().collect();
            let from = excerpt.line - 1;
            let wanted = lines.get(from..from + excerpt.body.len());
            if wanted != Some(&excerpt.body.iter().map(String::as_str).collect::<Vec<_>>()[..]) {
                errors.push(format!(
                    "{}: the excerpt of {}:{} is not the file's text there:\n{}",
                    sheet.display(),
                    excerpt.path,
                    excerpt.line,
                    excerpt.body.join("\n")
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    eprintln!("{excerpts} Go excerpts match their files");
}

struct Excerpt {
    path: String,
    line: usize,
    body: Vec<String>,
}

/// Every "`labs/go/…:LINE`" whose next non-blank line opens a ```go block.
fn go_excerpts(sheet: &str) -> Vec<Excerpt> {
    let lines: Vec<&str> = sheet.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(start) = line.rfind("`labs/go/") else {
            continue;
        };
        let rest = &line[start + 1..];
        let Some(end) = rest.find('`') else { continue };
        let Some((path, number)) = rest[..end].rsplit_once(':') else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        let mut j = i + 1;
        while j < lines.len() && lines[j].trim().is_empty() {
            j += 1;
        }
        if j >= lines.len() || lines[j].trim() != "```go" {
            continue;
        }
        let body: Vec<String> = lines[j + 1..]
            .iter()
            .take_while(|l| l.trim() != "```")
            .map(|l| l.to_string())
            .collect();
        found.push(Excerpt {
            path: path.to_string(),
            line: number,
            body,
        });
    }
    found
}

/// Issue "Go beside Rust": every sheet of labs 03–16 (but 04: the article
/// gives the transparent proxy one sentence and no code) runs the article's Go
/// program(s) beside lab's and quotes the Go lines it discusses; every claim
/// of every sheet says what it is about; a sheet with a claim about Go or
/// the article's code names the Go programs that measure it.
#[test]
fn every_lab_names_its_go_programs_quotes_them_and_tags_its_claims() {
    let labs = checkout_labs();
    let programs = lab::golang::GoModule::in_labs(&labs).catalogue().unwrap();
    let catalogue = lab::labs::Catalogue::load(&labs).unwrap();
    let mut errors = Vec::new();
    for lab in &catalogue.labs {
        let marks = lab::labs::sheet::marks(&lab.sheet);
        for claim in &marks.claims {
            if claim.tag.is_none() {
                errors.push(format!("lab {}: claim `{}` has no tag", lab.id(), claim.id));
            }
        }
        let about_go = marks.claims.iter().any(|c| {
            matches!(
                c.tag,
                Some(lab::labs::sheet::ClaimTag::Go | lab::labs::sheet::ClaimTag::Article)
            )
        });
        if about_go && lab.meta.go.is_empty() {
            errors.push(format!(
                "lab {}: claims about Go or the article's code, but no `go = [...]` in lab.toml",
                lab.id()
            ));
        }
        for name in &lab.meta.go {
            if programs.find(name).is_err() {
                errors.push(format!("lab {}: no Go program {name:?}", lab.id()));
            }
        }
        if (3..=16).contains(&lab.number) && lab.slug != "transparent-proxy" {
            if lab.meta.go.is_empty() {
                errors.push(format!("lab {}: runs no Go program", lab.id()));
            }
            if go_excerpts(&lab.sheet).is_empty() {
                errors.push(format!("lab {}: quotes no Go lines", lab.id()));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
