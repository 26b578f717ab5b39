//! `regdoc explain CAUSE_ID` and `regdoc explain --list`: the catalog, for people.

use crate::config::ClientKind;
use crate::diagnose::catalog::{self, Cause};
use crate::diagnose::remedy;
use crate::diagnose::text::edit_distance;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Why a cause could not be explained.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExplainError {
    #[error("unknown cause id {id:?}{}", suggest(.close))]
    Unknown {
        id: String,
        close: Vec<&'static str>,
    },
}

fn suggest(close: &[&str]) -> String {
    if close.is_empty() {
        "; `regdoc explain --list` shows every id".into()
    } else {
        format!("; did you mean: {}?", close.join(", "))
    }
}

/// Ids close to `id`: small edit distance, or sharing a word.
fn close_ids(id: &str) -> Vec<&'static str> {
    let id = id.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    let mut scored: Vec<(usize, &'static str)> = catalog::CAUSES
        .iter()
        .filter_map(|c| {
            let d = edit_distance(&id, c.id);
            let shares_word = id.split('_').filter(|w| w.len() >= 4).any(|w| {
                c.id.split('_')
                    .any(|cw| cw.starts_with(w) || (cw.len() >= 4 && edit_distance(w, cw) <= 2))
            });
            (d <= 3 || shares_word || (id.len() >= 4 && c.id.contains(&id))).then_some((d, c.id))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, id)| id).collect()
}

fn wrap(out: &mut String, indent: &str, text: &str) {
    // Keep lines readable in a terminal without a dependency: wrap at ~96 columns.
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + word.len() + 1 > 96 - indent.len() {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

fn list_items(out: &mut String, items: &[&str]) {
    for (i, item) in items.iter().enumerate() {
        let mut body = String::new();
        wrap(&mut body, "     ", item);
        let body = body.trim_start();
        let _ = write!(out, "  {}. {body}", i + 1);
    }
}

/// The full explanation of one cause.
pub fn render(c: &Cause) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} - {}", c.id, c.title);
    let _ = writeln!(out, "source: {}", c.source.label());
    let _ = writeln!(out);
    let _ = writeln!(out, "What the Docker client shows:");
    wrap(
        &mut out,
        "  ",
        &c.client_symptom.replace("{host}", "<registry>"),
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "How to confirm:");
    list_items(&mut out, c.how_to_confirm);
    let _ = writeln!(out);
    let _ = writeln!(out, "How to fix:");
    list_items(&mut out, c.remedy);
    let _ = writeln!(out);
    let containerd = remedy::for_client(c, ClientKind::Containerd);
    if containerd != c.remedy {
        // What a containerd node's record says instead (`diagnosis.client`, or containerd's
        // own requests).
        let _ = writeln!(out, "How to fix, on a containerd node (Kubernetes, ctr):");
        list_items(&mut out, &containerd);
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Documentation: {}", c.doc);
    if c.observable {
        let _ = writeln!(
            out,
            "regdoc reports this cause when it sees it on the Docker host's traffic."
        );
    } else {
        let _ = writeln!(
            out,
            "regdoc cannot observe this cause on the traffic it carries: it happens outside the Docker host's path through regdoc (listed for completeness; see How to confirm)."
        );
    }
    out
}

/// Explain the cause `id` (case, `-` for `_` and surrounding spaces forgiven), or say which ids
/// are close.
pub fn explain(id: &str) -> Result<String, ExplainError> {
    let normal = id.trim().to_ascii_lowercase().replace('-', "_");
    match catalog::by_id(&normal) {
        Some(c) => Ok(render(c)),
        None => Err(ExplainError::Unknown {
            id: id.to_string(),
            close: close_ids(id),
        }),
    }
}

/// Every cause id with its title, grouped by source.
pub fn list() -> String {
    let mut out = String::new();
    let width = catalog::CAUSES
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(0);
    for source in [
        catalog::Source::NetworkArticle,
        catalog::Source::LoginArticle,
        catalog::Source::Beyond,
    ] {
        let _ = writeln!(out, "{}:", source.label());
        for c in catalog::CAUSES.iter().filter(|c| c.source == source) {
            let mark = if c.observable {
                ""
            } else {
                " (not observable)"
            };
            let _ = writeln!(out, "  {:width$}  {}{mark}", c.id, c.title);
        }
    }
    out
}

/// Entry point of `regdoc explain`: prints to stdout, errors to stderr.
pub fn main(cause_id: Option<&str>, list_all: bool) -> ExitCode {
    match (cause_id, list_all) {
        (_, true) | (None, false) => {
            print!("{}", list());
            ExitCode::SUCCESS
        }
        (Some(id), false) => match explain(id) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("regdoc explain: {e}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_every_cause_with_all_sections() {
        for c in catalog::CAUSES {
            let text = explain(c.id).unwrap();
            for section in [
                "What the Docker client shows:",
                "How to confirm:",
                "How to fix:",
                "Documentation: https://",
            ] {
                assert!(text.contains(section), "{} lacks {section}", c.id);
            }
            assert!(text.starts_with(&format!("{} - {}", c.id, c.title)));
        }
    }

    #[test]
    fn unobservable_cause_says_so() {
        let text = explain("azure_service_access").unwrap();
        assert!(text.contains("cannot observe"));
        assert!(explain("client_firewall")
            .unwrap()
            .contains("reports this cause"));
    }

    #[test]
    fn data_endpoint_explanation_names_hosts_to_allow() {
        let text = explain("data_endpoint_firewall").unwrap();
        assert!(text.contains("<name>.<region>.data.azurecr.io"));
        assert!(text.contains("*.blob.core.windows.net"));
    }

    #[test]
    fn a_docker_step_has_its_containerd_counterpart() {
        let text = explain("intercept_ca_untrusted").unwrap();
        let (docker, containerd) = text.split_once("on a containerd node").unwrap();
        assert!(docker.contains("/etc/docker/certs.d/"), "{text}");
        assert!(containerd.contains("/etc/containerd/certs.d/"), "{text}");
        assert!(!containerd.contains("/etc/docker/"), "{text}");
        // A cause whose steps are the same for both clients shows them once.
        let text = explain("geo_replication").unwrap();
        assert!(!text.contains("on a containerd node"), "{text}");
    }

    #[test]
    fn unknown_id_suggests_close_ids() {
        let err = explain("registry_nmae").unwrap_err();
        let ExplainError::Unknown { close, .. } = &err;
        assert_eq!(close.first(), Some(&"registry_name"));
        assert!(err.to_string().contains("did you mean: registry_name"));
        let ExplainError::Unknown { close, .. } = explain("firewall").unwrap_err();
        assert!(close.contains(&"client_firewall") && close.contains(&"data_endpoint_firewall"));
        let ExplainError::Unknown { close, .. } = explain("expired-credential").unwrap_err();
        assert_eq!(close.first(), Some(&"expired_credentials"));
        assert_eq!(
            explain(" Expired-Credentials "),
            explain("expired_credentials")
        );
        let ExplainError::Unknown { close, .. } = explain("regsitry").unwrap_err();
        assert_eq!(
            close,
            vec!["registry_name", "registry_error", "registry_certificate"]
        );
        let err = explain("zzzzzzzzzzzz").unwrap_err();
        assert!(err.to_string().contains("--list"));
    }

    #[test]
    fn list_names_every_cause_once() {
        let l = list();
        for c in catalog::CAUSES {
            assert_eq!(
                l.lines()
                    .filter(|line| line.split_whitespace().next() == Some(c.id))
                    .count(),
                1,
                "{}",
                c.id
            );
        }
        assert!(l.contains("network article:") && l.contains("login article:"));
        assert!(l.contains("(not observable)"));
    }
}

/// Properties of `regdoc explain ID`: any text a user types gets an answer (the cause, or the
/// ids close to it), and every catalog id is found however it is spelt.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn any_text_gets_an_answer(id in "\\PC{0,40}|[a-z_ -]{0,40}") {
            if let Err(e) = explain(&id) {
                prop_assert!(!e.to_string().is_empty());
            }
        }

        #[test]
        fn every_id_is_found_however_spelt(
            which in any::<prop::sample::Index>(),
            upper in prop::collection::vec(any::<bool>(), 1..8),
            dashes in any::<bool>(),
            before in "[ \t]{0,2}",
            after in "[ \t\n]{0,2}",
        ) {
            let id = catalog::CAUSES[which.index(catalog::CAUSES.len())].id;
            let mut typed: String = id
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
                .collect();
            if dashes {
                typed = typed.replace('_', "-");
            }
            let explained = explain(&format!("{before}{typed}{after}"));
            prop_assert!(explained.is_ok(), "{:?}", typed);
            prop_assert_eq!(explained.unwrap(), render(catalog::by_id(id).unwrap()));
        }
    }
}
