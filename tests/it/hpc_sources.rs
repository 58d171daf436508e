//! One cluster reading the site's Statuspage page, a real Prometheus
//! Alertmanager and a real Slurm controller at once: one MOTD, one gate,
//! one `index.json` entry over three sources of three kinds.

use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use crate::common::{code, stderr, stdout, Site};
use crate::fake::site_page_with_one_incident;
use crate::support::alertmanager;
use crate::support::slurm::Slurm;

/// Deletes the test's reservation however the test ends.
struct Reservation<'a>(&'a Slurm, &'static str);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let _ = Command::new("scontrol")
            .args(["delete", &format!("reservationname={}", self.1)])
            .env("SLURM_CONF", self.0.conf())
            .output();
    }
}

#[test]
fn a_cluster_reads_a_statuspage_page_an_alertmanager_and_slurm_in_one_motd() {
    let Some(slurm) = Slurm::get() else { return };
    let _held = slurm.lock();
    let _reservation = Reservation(slurm, "motd_three");
    slurm.scontrol(&[
        "create",
        "reservation",
        "reservationname=motd_three",
        "starttime=now+1hour",
        "duration=120",
        "nodes=n[1-2]",
        "flags=maint",
        "users=root",
    ]);

    let am = alertmanager::shared();
    let at = |minutes: i64| (Timestamp::now() + SignedDuration::from_mins(minutes)).to_string();
    am.post_alerts(&json!([{
        "labels": {"alertname": "LoginDown", "cluster": "three-1", "severity": "critical",
                   "test": "three"},
        "annotations": {"summary": "Login nodes are down"},
        "startsAt": at(-10),
        "endsAt": at(60),
    }]));

    let page = site_page_with_one_incident();
    let site = Site::new(&format!(
        r#"[settings]
timezone = "UTC"
retries = 0

[sources.site]
kind = "statuspage-public"
url = "{page}"

[sources.prom]
kind = "alertmanager"
url = "{am}"
matchers = ['test="three"']

[sources.slurm]
kind = "slurm"

[clusters.three-1]
source = "site"
components = ["SAFE"]

[clusters.three-1.also.prom]
components = ["three-1"]

[clusters.three-1.also.slurm]
components = ["standard"]
"#,
        page = page.url(),
        am = am.url,
    ));
    let run = |args: &[&str]| {
        let mut cmd = site.cmd();
        cmd.args(args).env("SLURM_CONF", slurm.conf());
        cmd.output().unwrap()
    };

    let o = run(&["render"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let motd = site.read("three-1/motd");
    assert!(
        motd.contains("[INCIDENT] Authentication service degraded"),
        "{motd}"
    );
    assert!(
        motd.contains("[INCIDENT] [Alertmanager] Login nodes are down"),
        "{motd}"
    );
    assert!(motd.contains("Maintenance: motd_three"), "{motd}");
    assert!(motd.contains("Jobs whose time limit runs past "), "{motd}");

    // The gate blocks on the incidents of either further source as well.
    let o = run(&["gate", "three-1"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Login nodes are down"),
        "{}",
        stdout(&o)
    );

    let index: Value = serde_json::from_str(&site.read("index.json")).unwrap();
    assert_eq!(
        index["clusters"]["three-1"]["sources"],
        json!(["site", "prom", "slurm"]),
        "{index}"
    );
    let items = index["clusters"]["three-1"]["items"].as_array().unwrap();
    let from = |source: Option<&str>| {
        items
            .iter()
            .filter(|i| i["source"].as_str() == source)
            .count()
    };
    assert_eq!(from(None), 1, "{index}");
    assert_eq!(from(Some("prom")), 1, "{index}");
    assert_eq!(from(Some("slurm")), 1, "{index}");
}
