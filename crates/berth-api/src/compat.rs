//! `docs/compatibility.md`, generated from the support tables and the models. A test fails when
//! the committed page differs; `BERTH_BLESS=1 cargo test -p berth-api` rewrites it.

use crate::route::{Support, compatibility_table};
use berth_aws::Service;
use std::fmt::Write;

pub fn render_markdown() -> String {
    let table = compatibility_table();
    let mut out = String::from(
        "# Compatibility\n\n\
         Generated from the operation enums of `crates/berth-api` (`EcsOp`, `EcrOp`, `ElbOp`, `StsOp`: each\n\
         operation's IAM action, access level and support) and the botocore models in\n\
         `crates/berth-aws/models/` by `cargo test -p berth-api` (set `BERTH_BLESS=1` to rewrite this file).\n\
         Every operation of every model is routable: an operation that is not implemented answers\n\
         `NotImplemented` (HTTP 501) in its protocol's error envelope, never a fake success.\n\n\
         | service | implemented | partial | not implemented |\n|---|---|---|---|\n",
    );
    for service in Service::ALL {
        let count = |f: fn(&Support) -> bool| {
            table
                .iter()
                .filter(|(s, _, x, _)| *s == service && f(x))
                .count()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            service.service_id(),
            count(|s| *s == Support::Implemented),
            count(|s| matches!(s, Support::Partial(_))),
            count(|s| *s == Support::NotImplemented),
        );
    }
    for service in Service::ALL {
        let _ = write!(
            out,
            "\n## {} (`{}`, API version {})\n\n| operation | status | IAM action | access | notes |\n|---|---|---|---|---|\n",
            service.service_id(),
            service.signing_name(),
            service.api_version()
        );
        for (_, name, support, info) in table.iter().filter(|(s, _, _, _)| *s == service) {
            let (status, note) = match support {
                Support::Implemented => ("implemented", ""),
                Support::Partial(n) => ("partial", *n),
                Support::NotImplemented => ("not implemented", ""),
            };
            let (action, access) = match info {
                Some(i) => (format!("`{}`", i.action), i.access.as_str()),
                None => (String::new(), ""),
            };
            let _ = writeln!(out, "| {name} | {status} | {action} | {access} | {note} |");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_page_is_up_to_date() {
        // The crate's directory as cargo gives it when running the test: a test binary reused
        // from a shared target directory may have been built in another checkout.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = format!("{dir}/../../docs/compatibility.md");
        let expected = render_markdown();
        if std::env::var_os("BERTH_BLESS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/compatibility.md is stale: run `BERTH_BLESS=1 cargo test -p berth-api` and commit it"
        );
    }
}
