//! What to do about what the doctor found: one sentence per problem (a port
//! in the way, ZooKeeper or a program missing) or note (a lab server already
//! running), each with a command to run. A busy port is told how to free it
//! and, for the lab's own ports, which command moves off it.

use super::ports::LAB_PORTS;
use super::report::{
    Namespaces, NextStep, PortReport, PortStatus, StepKind, Tool, ZooKeeper, describe_owner,
};

/// Every problem and note, the ports' first, in their order.
pub(super) fn next_steps(
    ports: &[PortReport],
    zookeeper: &ZooKeeper,
    tools: &[Tool],
    namespaces: &Namespaces,
) -> Vec<NextStep> {
    let mut steps: Vec<NextStep> = ports.iter().filter_map(port_step).collect();
    if !zookeeper.installed {
        steps.push(NextStep {
            kind: StepKind::Problem,
            text: format!(
                "ZooKeeper is missing (the discovery lab and `lab zk up` run it): \
                 sudo apt-get install zookeeper (it provides {})",
                zookeeper.script
            ),
        });
    }
    for tool in tools.iter().filter(|tool| tool.required) {
        let package = match tool.name.as_str() {
            "java" => "default-jre-headless",
            "go" => "golang-go",
            "ip" => "iproute2",
            "nft" => "nftables",
            other => other,
        };
        if !tool.found {
            steps.push(NextStep {
                kind: StepKind::Problem,
                text: format!(
                    "{} is missing ({}): sudo apt-get install {package}",
                    tool.name, tool.needed_for
                ),
            });
        } else if let Some(error) = &tool.error {
            steps.push(NextStep {
                kind: StepKind::Problem,
                text: format!(
                    "{} is on PATH but did not say its version ({error}): reinstall it, \
                     sudo apt-get install --reinstall {package}",
                    tool.name
                ),
            });
        }
    }
    if let Some(problem) = &namespaces.problem {
        steps.push(NextStep {
            kind: StepKind::Problem,
            text: format!("lab transparent cannot make its network namespaces: {problem}"),
        });
    }
    steps
}

/// What to do about one port, if anything.
fn port_step(port: &PortReport) -> Option<NextStep> {
    let number = port.port;
    let known = LAB_PORTS.iter().find(|known| known.port == number);
    let alt = number.saturating_add(10).max(1024);
    let elsewhere = match known {
        Some(known) => format!("or use another port: {}", (known.elsewhere)(alt)),
        None => format!("or choose another port (such as {alt})"),
    };
    let name = match known {
        Some(known) => format!("port {number} ({})", known.role),
        None => format!("port {number}"),
    };
    match port.status {
        PortStatus::Free => None,
        PortStatus::Unknown => Some(NextStep {
            kind: StepKind::Problem,
            text: format!(
                "{name} could not be checked: {}; try `ss -ltn 'sport = :{number}'`",
                port.error.as_deref().unwrap_or("binding failed")
            ),
        }),
        PortStatus::Busy => {
            let who = describe_owner(port, number);
            let owner = port.owners.first();
            let pid = owner.and_then(|owner| owner.pid);
            let text = match (port.expected, pid) {
                (true, Some(pid)) => format!(
                    "{name} is used by {who}, the lab's own: fine while you follow a lab; to free it, \
                     stop it (Ctrl-C in its terminal, or kill {pid})"
                ),
                (false, Some(pid)) => {
                    format!("{name} is used by {who}: stop it (kill {pid}) {elsewhere}")
                }
                (_, None) if owner.is_some() => format!(
                    "{name} is used by {who}: ask its owner (or root) to stop it \
                     (`sudo ss -ltnp 'sport = :{number}'` names it), {elsewhere}"
                ),
                (_, None) => format!(
                    "{name} is used by {who}: `ss -ltnp 'sport = :{number}'` (with sudo for another \
                     user's) names it; stop it {elsewhere}"
                ),
            };
            let kind = if port.expected {
                StepKind::Note
            } else {
                StepKind::Problem
            };
            Some(NextStep { kind, text })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Owner;

    #[test]
    fn a_busy_port_says_who_and_what_to_do() {
        let port = PortReport {
            port: 2002,
            role: "lab proxy / lab naive".into(),
            status: PortStatus::Busy,
            error: None,
            expected: false,
            owners: vec![Owner {
                address: "127.0.0.1:2002".into(),
                uid: 1000,
                user: None,
                other_user: false,
                pid: Some(1234),
                command: Some("python3 -m http.server 2002".into()),
                cmdline: Vec::new(),
            }],
        };
        let step = port_step(&port).expect("a step");
        assert_eq!(step.kind, StepKind::Problem);
        assert!(
            step.text
                .contains("`python3 -m http.server 2002` (PID 1234)"),
            "{}",
            step.text
        );
        assert!(step.text.contains("kill 1234"), "{}", step.text);
        assert!(
            step.text.contains("--listen 127.0.0.1:2012"),
            "{}",
            step.text
        );
        let free = PortReport {
            status: PortStatus::Free,
            owners: Vec::new(),
            ..port
        };
        assert!(port_step(&free).is_none());
    }
}
