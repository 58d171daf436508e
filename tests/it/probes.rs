//! The `probes` source kind end to end: `statusmotd probe` against a real
//! HTTP server and TCP port on 127.0.0.1 and real plugin scripts, then
//! `render`, as a cron job or systemd timer would drive them.

use std::path::Path;
use std::time::Duration;

use crate::common::{code, stderr, stdout, write_executable, Site};
use crate::support::probes::{HttpToggle, Mode, TcpToggle};

/// A site whose cluster `alpha` reads the `checks` source holding `probes`
/// (TOML `[[sources.checks.probe]]` tables), thresholds 3/2.
fn site(probes: &str) -> Site {
    Site::new(&format!(
        r#"
[settings]
timezone = "UTC"

[sources.checks]
kind = "probes"
timeout = "3s"
failure_threshold = 3
success_threshold = 2

{probes}

[clusters.alpha]
source = "checks"
groups = ["Checks"]
"#
    ))
}

/// Runs `statusmotd probe ARGS`; returns its exit code and stdout.
fn probe(site: &Site, args: &[&str]) -> (i32, String) {
    let o = site.cmd().arg("probe").args(args).output().unwrap();
    assert!(
        matches!(code(&o), 0 | 1),
        "probe failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    (code(&o), stdout(&o))
}

/// Renders and returns alpha's MOTD (empty when all is well).
fn motd(site: &Site) -> String {
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "render failed: {}", stderr(&o));
    std::fs::read_to_string(site.out("alpha/motd")).unwrap_or_default()
}

/// The incident snippets of alpha.
fn incident_files(site: &Site) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(site.out("alpha/items")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incident-"))
        .collect();
    names.sort();
    names
}

fn http_probe(url: &str) -> String {
    format!(
        r#"
[[sources.checks.probe]]
name = "web"
group = "Checks"
http = "{url}"
expect_json = {{ "/status" = "UP" }}
"#
    )
}

#[test]
fn an_http_probe_flips_on_the_third_failure_and_the_second_success() {
    let server = HttpToggle::spawn();
    let site = site(&http_probe(&server.url("/health")));
    assert_eq!(probe(&site, &[]).0, 0);
    assert_eq!(motd(&site), "", "all is well: an empty MOTD");

    for (n, mode) in [(1, Mode::Error), (2, Mode::Closed)] {
        server.set(mode);
        let (exit, out) = probe(&site, &[]);
        assert_eq!(exit, 0, "failure {n} of 3 is not down yet: {out}");
        assert!(out.contains(&format!("fail {n}/3")), "{out}");
        assert_eq!(motd(&site), "", "failure {n} of 3 never reaches the MOTD");
    }
    server.set(Mode::WrongBody);
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 1, "the third failure: down: {out}");
    assert!(out.contains("major_outage (was operational)"), "{out}");
    let text = motd(&site);
    assert!(text.contains("[INCIDENT] web"), "{text}");
    assert!(
        text.contains("`/status` is \"DOWN\""),
        "the latest reason: {text}"
    );
    assert!(text.contains("Major outage"), "{text}");
    let incident = incident_files(&site);
    assert_eq!(incident.len(), 1, "{incident:?}");

    server.set(Mode::Healthy);
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 1, "one success is not up yet: {out}");
    assert!(out.contains("ok 1/2"), "{out}");
    assert!(motd(&site).contains("[INCIDENT] web"));
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 0, "the second success: up: {out}");
    let text = motd(&site);
    assert!(!text.contains("[INCIDENT]"), "{text}");
    assert!(
        text.contains("web"),
        "the resolved incident is shown: {text}"
    );
    assert_eq!(
        incident_files(&site),
        incident,
        "the same incident, resolved"
    );
}

#[test]
fn a_single_failure_between_successes_never_reaches_the_motd() {
    let server = HttpToggle::spawn();
    let site = site(&http_probe(&server.url("/health")));
    for mode in [Mode::Error, Mode::WrongBody, Mode::Closed, Mode::Redirect] {
        server.set(Mode::Healthy);
        assert_eq!(probe(&site, &[]).0, 0);
        server.set(mode);
        let (exit, out) = probe(&site, &[]);
        assert_eq!(exit, 0, "{mode:?}: {out}");
        assert!(out.contains("CRITICAL"), "{mode:?}: {out}");
        assert_eq!(motd(&site), "", "{mode:?}");
    }
    let (_, out) = probe(&site, &[]);
    assert!(
        out.contains("redirect to /elsewhere, not followed"),
        "redirects are not followed by default: {out}"
    );
    assert!(incident_files(&site).is_empty());
}

#[test]
fn slow_answers_degrade_and_redirects_are_followed_when_asked() {
    let server = HttpToggle::spawn();
    let site = site(&format!(
        r#"
[[sources.checks.probe]]
name = "web"
group = "Checks"
http = "{}"
slow = "1s"
failure_threshold = 1
success_threshold = 1
follow_redirects = true
"#,
        server.url("/health")
    ));
    server.set(Mode::Redirect);
    assert_eq!(probe(&site, &[]).0, 0, "followed to a healthy answer");
    server.set(Mode::Slow(Duration::from_millis(1500)));
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 1, "{out}");
    assert!(
        out.contains("WARNING") && out.contains("slower than 1s"),
        "{out}"
    );
    assert!(out.contains("degraded_performance"), "{out}");
    let text = motd(&site);
    assert!(text.contains("Degraded performance"), "{text}");
}

#[test]
fn a_tcp_probe_follows_the_port_with_hysteresis() {
    let port = TcpToggle::open();
    let site = site(&format!(
        r#"
[[sources.checks.probe]]
name = "login1 ssh"
group = "Checks"
tcp = "{}"
down = "partial_outage"
"#,
        port.addr
    ));
    assert_eq!(probe(&site, &["login1 ssh"]).0, 0);
    port.close();
    assert_eq!(probe(&site, &[]).0, 0);
    assert_eq!(probe(&site, &[]).0, 0);
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 1, "{out}");
    assert!(
        out.contains("partial_outage"),
        "the configured `down`: {out}"
    );
    assert!(out.contains("cannot connect"), "{out}");
    assert!(motd(&site).contains("Partial outage"));
    port.reopen();
    assert_eq!(probe(&site, &[]).0, 1);
    assert_eq!(probe(&site, &[]).0, 0);
    assert!(!motd(&site).contains("[INCIDENT]"));
}

/// Writes an executable shell script into the site.
fn script(site: &Site, name: &str, body: &str) -> String {
    let path = site.path().join(name);
    write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
    path.to_string_lossy().into_owned()
}

/// Adds `probes` (TOML) to the `checks` source of `site`'s mapping, at its
/// end: a key there belongs to the last probe.
fn add_probes(site: &Site, probes: &str) {
    let path = site.path().join("mapping.toml");
    let mapping = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[clusters.alpha]", &format!("{probes}\n[clusters.alpha]"));
    std::fs::write(path, mapping).unwrap();
}

/// A plugin that starts a child and waits for it; the child's pid is
/// written to the returned file.
fn hang_with_child(site: &Site) -> (String, std::path::PathBuf) {
    let pidfile = site.path().join("child.pid");
    let hang = script(
        site,
        "hang",
        &format!("sleep 300 & echo $! > {}\nwait", pidfile.display()),
    );
    (hang, pidfile)
}

/// Whether process `pid` is gone (or a zombie, its parent being gone too).
fn gone(pid: &str) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn command_probe(name: &str, program: &str) -> String {
    format!(
        r#"
[[sources.checks.probe]]
name = "{name}"
group = "Checks"
command = ["{program}", "--flag with space"]
failure_threshold = 1
success_threshold = 1
"#
    )
}

#[test]
fn command_probes_follow_the_nagios_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str, body: &str| {
        let path = dir.path().join(name);
        write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
        path.to_string_lossy().into_owned()
    };
    let probes = [
        command_probe(
            "ok",
            &mk("ok", "echo \"DISK OK - $1\"; echo second line; exit 0"),
        ),
        command_probe("warn", &mk("warn", "echo 'DISK WARNING - 8% free'; exit 1")),
        command_probe(
            "crit",
            &mk("crit", "echo 'DISK CRITICAL - 1% free' >&2; exit 2"),
        ),
        command_probe(
            "unknown",
            &mk("unknown", "echo 'cannot stat /work'; exit 3"),
        ),
        command_probe(
            "secret",
            &mk("secret", "echo \"key=${PROBE_TEST_KEY:-unset}\""),
        ),
    ]
    .join("\n");
    let site = Site::new(&format!(
        r#"
[sources.hpc]
kind = "statuspage"
page_id = "abc123"
api_key = {{ env = "PROBE_TEST_KEY" }}

[sources.checks]
kind = "probes"
{probes}

[clusters.alpha]
source = "checks"
groups = ["Checks"]
"#
    ));
    let o = site
        .cmd()
        .arg("probe")
        .env("PROBE_TEST_KEY", "sekrit")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "a CRITICAL probe is down: {out}{}", stderr(&o));
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
            .to_owned()
    };
    assert!(line("ok").contains("OK") && line("ok").contains("DISK OK - --flag with space"));
    assert!(!line("ok").contains("second line"), "the first line only");
    assert!(line("warn").contains("WARNING") && line("warn").contains("degraded_performance"));
    assert!(line("crit").contains("CRITICAL") && line("crit").contains("major_outage"));
    assert!(
        line("crit").contains("DISK CRITICAL - 1% free"),
        "stderr when stdout is empty"
    );
    let unknown = line("unknown");
    assert!(
        unknown.contains("UNKNOWN")
            && unknown.contains("operational")
            && unknown.contains("cannot stat /work"),
        "UNKNOWN changes nothing: {unknown}"
    );
    assert!(
        line("secret").contains("key=unset"),
        "no secret in a probe's environment"
    );
    assert!(!out.contains("sekrit"));
    // The columns line up.
    let starts: Vec<usize> = out.lines().map(|l| l.find("  ").unwrap()).collect();
    assert!(out.lines().all(|l| l.len() > starts[0]));
    let column = |l: &str| l.find(|c: char| c.is_ascii_uppercase()).unwrap();
    let first = column(out.lines().next().unwrap());
    assert!(out.lines().all(|l| column(l) == first), "aligned:\n{out}");
}

#[test]
fn an_unknown_check_keeps_the_status_and_the_motd_says_it_was_not_checked() {
    let site = site("");
    let code_file = site.path().join("code");
    let plugin = script(
        &site,
        "lustre",
        &format!(
            "echo 'cannot stat /work'; exit $(cat {})",
            code_file.display()
        ),
    );
    std::fs::write(
        site.path().join("mapping.toml"),
        format!(
            r#"
[settings]
timezone = "UTC"

[sources.checks]
kind = "probes"
{}
[clusters.alpha]
source = "checks"
groups = ["Checks"]
"#,
            command_probe("lustre", &plugin)
        ),
    )
    .unwrap();
    let step = |exit: u8| {
        std::fs::write(&code_file, exit.to_string()).unwrap();
        probe(&site, &[]);
        motd(&site)
    };

    let first = step(3);
    assert!(
        first.contains("Operational") && first.contains("Not checked: lustre (cannot stat /work)"),
        "an UNKNOWN first check says so and changes nothing:\n{first}"
    );
    let down = step(2);
    assert!(down.contains("[INCIDENT] lustre"), "{down}");
    assert!(
        !down.contains("Not checked"),
        "a CRITICAL is a result:\n{down}"
    );
    let still_down = step(3);
    assert!(
        still_down.contains("[INCIDENT] lustre") && still_down.contains("Not checked: lustre"),
        "UNKNOWN while down: still down, and said:\n{still_down}"
    );
    let up = step(0);
    assert!(
        !up.contains("Not checked")
            && !up.contains("[INCIDENT]")
            && up.contains("[RESOLVED] lustre"),
        "{up}"
    );
}

#[test]
fn a_hung_command_is_killed_with_its_children_and_a_flood_is_capped() {
    let site = site("");
    let (hang, pidfile) = hang_with_child(&site);
    let flood = script(
        &site,
        "flood",
        "head -c 1048576 /dev/zero | tr '\\0' 'x'; echo; exit 2",
    );
    add_probes(
        &site,
        &format!(
            "{}\ntimeout = \"1s\"\n{}",
            command_probe("hang", &hang),
            command_probe("flood", &flood)
        ),
    );
    let started = std::time::Instant::now();
    let (exit, out) = probe(&site, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(exit, 1, "{out}");
    let hang_line = out.lines().find(|l| l.starts_with("hang ")).unwrap();
    assert!(
        hang_line.contains("CRITICAL") && hang_line.contains("killed"),
        "{hang_line}"
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let pid = pid.trim();
    crate::common::eventually("the hung plugin's child is gone", 5, || gone(pid));
    let flood_line = out.lines().find(|l| l.starts_with("flood ")).unwrap();
    assert!(flood_line.contains("CRITICAL"), "{flood_line}");
    assert!(
        flood_line.len() < 400,
        "the reason is capped: {} bytes",
        flood_line.len()
    );
}

#[test]
fn a_restart_in_a_streak_or_an_outage_neither_realerts_nor_forgets() {
    let server = HttpToggle::spawn();
    let site = site(&http_probe(&server.url("/health")));
    server.set(Mode::Error);
    // Each `statusmotd probe` is a new process: the streak is persisted.
    probe(&site, &[]);
    probe(&site, &[]);
    assert_eq!(motd(&site), "");
    assert_eq!(probe(&site, &[]).0, 1, "the third failure, across restarts");
    let text = motd(&site);
    let first = incident_files(&site);
    assert_eq!(first.len(), 1, "{first:?}");
    for _ in 0..3 {
        assert_eq!(probe(&site, &[]).0, 1, "still down");
    }
    assert_eq!(incident_files(&site), first, "no second incident");
    assert_eq!(motd(&site), text, "the same incident, same start");
    // The persisted state is what `render` reads, in a fresh process, without
    // running any probe.
    server.set(Mode::Healthy);
    assert!(
        motd(&site).contains("[INCIDENT] web"),
        "render runs no probe"
    );
}

#[test]
fn serve_runs_probes_and_a_restart_keeps_the_outage() {
    let server = HttpToggle::spawn();
    let site = site(&http_probe(&server.url("/health")).replace(
        "name = \"web\"",
        "name = \"web\"\ninterval = \"1s\"\nfailure_threshold = 2",
    ));
    server.set(Mode::Error);
    let serve = |site: &Site| crate::common::Served::spawn(site.serve_cmd());
    let mut first_run = serve(&site);
    let motd_file = site.out("alpha/motd");
    // The MOTD and the incident's snippet are two files, written one after
    // the other.
    crate::common::eventually("serve renders the outage", 30, || {
        std::fs::read_to_string(&motd_file).is_ok_and(|t| t.contains("[INCIDENT] web"))
            && !incident_files(&site).is_empty()
    });
    let (status, metrics) =
        crate::common::http_get(first_run.addr(), "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(status, 200);
    for series in [
        "statusmotd_probe_up{source=\"checks\",probe=\"web\"} 0",
        "statusmotd_probe_checks_total{source=\"checks\",probe=\"web\",result=\"critical\"}",
        "statusmotd_probe_failures_in_a_row{source=\"checks\",probe=\"web\"}",
        "statusmotd_probe_duration_seconds{source=\"checks\",probe=\"web\"}",
    ] {
        assert!(metrics.contains(series), "no `{series}` in:\n{metrics}");
    }
    first_run.kill();
    let first = incident_files(&site);
    assert_eq!(first.len(), 1);
    let before = std::fs::read_to_string(&motd_file).unwrap();
    let _served = serve(&site);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        incident_files(&site),
        first,
        "no second incident after a restart"
    );
    assert_eq!(std::fs::read_to_string(&motd_file).unwrap(), before);
    server.set(Mode::Healthy);
    crate::common::eventually("serve renders the recovery", 30, || {
        std::fs::read_to_string(&motd_file).is_ok_and(|t| !t.contains("[INCIDENT]"))
    });
}

#[test]
fn maintenance_in_progress_wins_over_a_failing_probe() {
    let port = TcpToggle::open();
    port.close();
    let site = Site::new(&format!(
        r#"
[settings]
timezone = "UTC"

[sources.hpc]
kind = "file"
path = "status.json"

[sources.checks]
kind = "probes"
failure_threshold = 1

[[sources.checks.probe]]
name = "login1 ssh"
group = "Checks"
tcp = "{}"

[clusters.alpha]
source = "hpc"
components = ["Login nodes"]

[clusters.alpha.also.checks]
groups = ["Checks"]
"#,
        port.addr
    ));
    let now = jiff::Timestamp::now();
    let snapshot = |maintenance: bool| {
        let incidents = if maintenance {
            serde_json::json!([{
                "id": "m1", "kind": "maintenance", "name": "Login node upgrade",
                "status": "in_progress", "impact": "maintenance",
                "created_at": now.to_string(), "updated_at": now.to_string(),
                "started_at": null, "monitoring_at": null, "resolved_at": null,
                "scheduled_for": (now - jiff::SignedDuration::from_hours(1)).to_string(),
                "scheduled_until": (now + jiff::SignedDuration::from_hours(1)).to_string(),
                "shortlink": null, "components": ["c1"], "updates": []
            }])
        } else {
            serde_json::json!([])
        };
        serde_json::json!({"format": 1, "sources": {"hpc": {
            "page": {"id": "p1", "name": "HPC", "url": null},
            "fetched_at": now.to_string(),
            "components": [{"id": "c1", "name": "Login nodes", "status": "operational",
                            "group_id": null, "description": null, "updated_at": null}],
            "groups": [],
            "incidents": incidents
        }}})
        .to_string()
    };
    std::fs::write(site.path().join("status.json"), snapshot(true)).unwrap();
    assert_eq!(probe(&site, &[]).0, 1, "the probe itself is down");
    let text = motd(&site);
    assert!(
        text.contains("[MAINTENANCE NOW] Login node upgrade"),
        "{text}"
    );
    assert!(
        !text.contains("[INCIDENT]"),
        "maintenance wins: no incident: {text}"
    );
    assert!(text.contains("Under maintenance"), "{text}");
    assert!(incident_files(&site).is_empty());
    let o = site.run(&["gate", "alpha", "--block-on", "incident"]);
    assert_eq!(code(&o), 0, "no incident blocks: {}", stdout(&o));

    // When the maintenance is over and the probe still fails, it is news.
    std::fs::write(site.path().join("status.json"), snapshot(false)).unwrap();
    let text = motd(&site);
    assert!(text.contains("[INCIDENT] [checks] login1 ssh"), "{text}");
}

#[test]
fn config_errors_name_the_problem_and_exit_3() {
    let probes_d = tempfile::tempdir().unwrap();
    std::fs::write(
        probes_d.path().join("a.toml"),
        "[[probe]]\nname = \"web\"\ntcp = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    std::fs::write(
        probes_d.path().join("b.toml"),
        "[[probe]]\nname = \"web\"\nhttp = \"http://127.0.0.1:1/\"\n",
    )
    .unwrap();
    let include = format!("include = [\"{}/*.toml\"]", probes_d.path().display());
    let cases = [
        (
            include.clone(),
            vec!["`web` is defined twice", "a.toml", "b.toml"],
        ),
        (
            "[[sources.checks.probe]]\nname = \"x\"\ntcp = \"h:1\"\nhttp = \"http://h/\""
                .to_owned(),
            vec!["exactly one of `tcp`, `http` or `command`"],
        ),
        (
            "[[sources.checks.probe]]\nname = \"x\"\ntcp = \"nohost\"".to_owned(),
            vec!["invalid `tcp` address", "hint:"],
        ),
        (
            "[[sources.checks.probe]]\nname = \"x\"\ntcp = \"h:1\"\nslow = \"1s\"".to_owned(),
            vec!["`slow` is a key of `http` probes only"],
        ),
        (
            "[[sources.checks.probe]]\nname = \"x\"\ncommand = [\"/bin/true\"]\ndown = \"broken\""
                .to_owned(),
            vec!["invalid `down` status `broken`", "partial_outage"],
        ),
        (
            "failure_threshold = 0\n[[sources.checks.probe]]\nname = \"x\"\ntcp = \"h:1\""
                .to_owned(),
            vec!["invalid threshold `0`"],
        ),
        (String::new(), vec!["has no probe", "hint:"]),
    ];
    for (body, wanted) in cases {
        let site = Site::new(&format!(
            "[sources.checks]\nkind = \"probes\"\n{body}\n\n[clusters.alpha]\nsource = \"checks\"\ncomponents = [\"web\"]\n"
        ));
        let o = site.run(&["probe"]);
        let err = stderr(&o);
        assert_eq!(code(&o), 3, "{body}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{body}: wanted `{w}` in:\n{err}");
        }
    }
    // Included files merge; `probe NAME` runs that probe only.
    std::fs::remove_file(probes_d.path().join("b.toml")).unwrap();
    let site = Site::new(&format!(
        "[sources.checks]\nkind = \"probes\"\n{include}\n\n[clusters.alpha]\nsource = \"checks\"\ncomponents = [\"web\"]\n"
    ));
    let o = site.run(&["probe", "web"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("web "), "{}", stdout(&o));
    let o = site.run(&["probe", "nope"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no probe is named `nope`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn render_before_any_probe_says_to_run_one() {
    let site = site(&http_probe("http://127.0.0.1:1/"));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("statusmotd probe"), "{}", stderr(&o));
}

/// The example of README's "The `probes` source" is a valid configuration.
#[test]
fn the_readme_example_is_valid() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## The `probes` source")
        .nth(1)
        .expect("README has a section on the probes source");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let text = format!(
        "[sources.hpc]\nkind = \"file\"\npath = \"status.json\"\n\n{example}\n\
         [clusters.archer2]\nsource = \"hpc\"\ncomponents = [\"Login nodes\"]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = statusmotd::config::Config::parse(&text, &dir.path().join("mapping.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let statusmotd::config::SourceKind::Probes(probes) = &config.sources["checks"].kind else {
        panic!("not a probes source");
    };
    let names: Vec<&str> = probes.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["login1 ssh", "SAFE portal", "Lustre /work"]);
    assert_eq!(probes.probes[2].failure_threshold, 1);
    assert_eq!(probes.probes[1].failure_threshold, 3);
}

/// A probes file per stack: `serve` picks up one added and one removed like
/// any change of the configuration; the removed probe disappears and its
/// incident resolves.
#[test]
fn serve_picks_up_added_and_removed_probes_files() {
    let port = TcpToggle::open();
    let site = site(&format!(
        r#"include = ["probes.d/*.toml"]

[[sources.checks.probe]]
name = "login1 ssh"
group = "Checks"
tcp = "{}"
interval = "1s"
"#,
        port.addr
    ));
    let probes_d = site.path().join("probes.d");
    std::fs::create_dir(&probes_d).unwrap();
    let served = crate::common::Served::spawn(site.serve_cmd());
    let motd_file = site.out("alpha/motd");
    crate::common::eventually("the first render", 30, || {
        site.path().join("out/index.json").exists()
    });
    assert_eq!(std::fs::read_to_string(&motd_file).unwrap_or_default(), "");
    std::fs::write(
        probes_d.join("stack-a.toml"),
        "[[probe]]\nname = \"stack a\"\ngroup = \"Checks\"\ncommand = [\"false\"]\n\
         interval = \"1s\"\nfailure_threshold = 1\n",
    )
    .unwrap();
    crate::common::eventually("the added probe's outage", 30, || {
        std::fs::read_to_string(&motd_file).is_ok_and(|t| t.contains("[INCIDENT] stack a"))
    });
    std::fs::remove_file(probes_d.join("stack-a.toml")).unwrap();
    // Its component is gone, so the cluster no longer selects its (resolved)
    // incident: nothing is left of it on the login screen.
    crate::common::eventually("the removed probe gone from the MOTD", 30, || {
        std::fs::read_to_string(&motd_file).is_ok_and(|t| !t.contains("stack a"))
    });
    let state = site.path().join("state/checks.probes.json");
    crate::common::eventually(
        "the removed probe's incident resolved in the state",
        30,
        || {
            let state: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
            state["probes"].get("stack a").is_none() && state["resolved"][0]["probe"] == "stack a"
        },
    );
    drop(served);
}

/// At most eight checks run at once, and they do run side by side.
#[test]
fn checks_run_at_most_eight_at_once() {
    let site = site("");
    let running = site.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let plugin = script(
        &site,
        "plugin",
        &format!(
            "cd {} || exit 3\ntouch \"m$$\"\nsleep 1\necho \"running $(ls | wc -l)\"\nrm -f \"m$$\"",
            running.display()
        ),
    );
    let probes: String = (0..16)
        .map(|n| command_probe(&format!("p{n:02}"), &plugin))
        .collect();
    add_probes(&site, &probes);
    let started = std::time::Instant::now();
    let (exit, out) = probe(&site, &[]);
    let took = started.elapsed();
    assert_eq!(exit, 0, "{out}");
    let counts: Vec<usize> = out
        .lines()
        .map(|l| {
            l.rsplit_once("running ")
                .and_then(|(_, n)| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    assert_eq!(counts.len(), 16);
    assert!(counts.iter().all(|&n| n <= 8), "{counts:?}");
    assert!(
        took >= Duration::from_secs(2),
        "two rounds of eight: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "side by side: {took:?}");
}

/// A certificate expiring in 3 days, checked with `tls_expires_within =
/// "14d"`: degraded (with the expiry in the reason); with "2d" it is fine.
#[test]
fn a_certificate_expiring_soon_degrades() {
    let server = crate::support::probes::TlsServer::spawn(3);
    let probe_of = |within: &str| {
        format!(
            r#"
[[sources.checks.probe]]
name = "portal"
group = "Checks"
http = "https://127.0.0.1:{}/health"
expect_body = "OK"
tls_expires_within = "{within}"
failure_threshold = 1
"#,
            server.port
        )
    };
    for (within, exit, wanted) in [("2d", 0, "OK"), ("14d", 1, "WARNING")] {
        let site = site(&probe_of(within));
        let o = site
            .cmd()
            .arg("probe")
            .env("SSL_CERT_FILE", &server.ca)
            .output()
            .unwrap();
        let out = stdout(&o);
        assert_eq!(code(&o), exit, "{within}: {out}{}", stderr(&o));
        assert!(out.contains(wanted), "{within}: {out}");
        if exit == 1 {
            assert!(out.contains("degraded_performance"), "{out}");
            assert!(out.contains("the certificate expires"), "{out}");
            assert!(out.contains("within 14d"), "{out}");
        }
    }
    // Without the test CA the certificate is not trusted: the system CA
    // store is what counts.
    let site = site(&probe_of("2d"));
    let o = site
        .cmd()
        .arg("probe")
        .env("SSL_CERT_FILE", site.path().join("mapping.toml"))
        .output()
        .unwrap();
    assert!(stdout(&o).contains("CRITICAL"), "{}", stdout(&o));
}

/// `packaging/examples/ansible`, run by the real `ansible-playbook` against
/// localhost: a probes file per stack that statusmotd accepts, removed when
/// the stack is decommissioned. Fails when `ansible-playbook` is missing
/// (`scripts/test` installs it) unless `STATUSMOTD_SKIP_ANSIBLE=1`.
#[test]
fn the_ansible_role_writes_and_removes_a_probes_file_per_stack() {
    let found = std::process::Command::new("ansible-playbook")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("STATUSMOTD_SKIP_ANSIBLE").is_some_and(|v| v == "1"),
            "`ansible-playbook` is missing: install ansible-core (scripts/test does), \
             or set STATUSMOTD_SKIP_ANSIBLE=1 to skip this test"
        );
        eprintln!("skipping: no ansible-playbook and STATUSMOTD_SKIP_ANSIBLE=1");
        return;
    }
    let port = TcpToggle::open();
    let site = site("include = [\"probes.d/*.toml\"]");
    let probes_d = site.path().join("probes.d");
    let roles = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/examples/ansible/roles");
    std::fs::write(
        site.path().join("playbook.yml"),
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles:\n    - statusmotd_probes\n",
    )
    .unwrap();
    let play = |stacks: serde_json::Value| {
        let vars = serde_json::json!({
            "statusmotd_probes_dir": probes_d,
            "statusmotd_stacks": stacks,
        });
        std::fs::write(site.path().join("vars.json"), vars.to_string()).unwrap();
        let o = std::process::Command::new("ansible-playbook")
            .args(["-i", "localhost,", "-e", "@vars.json", "playbook.yml"])
            .current_dir(site.path())
            .env("ANSIBLE_ROLES_PATH", &roles)
            .env("ANSIBLE_LOCAL_TEMP", site.path().join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ansible-playbook failed:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
    };
    let stacks = |login_state: &str| {
        serde_json::json!([
            {"name": "login", "state": login_state, "probes": [{
                "name": "login1 ssh", "group": "Checks",
                "tcp": port.addr.to_string(), "down": "partial_outage",
            }]},
            {"name": "portal", "probes": [{
                "name": "portal \"main\"", "group": "Checks",
                "http": "http://127.0.0.1:9/health", "expect_status": [200, 204],
                "expect_json": {"/status": "UP", "/checks/0": 1}, "timeout": "2s",
            }]},
        ])
    };
    play(stacks("present"));
    assert!(probes_d.join("login.toml").exists() && probes_d.join("portal.toml").exists());
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 0, "{out}");
    assert!(
        out.contains("login1 ssh") && out.contains("portal \"main\""),
        "{out}"
    );
    let o = site.run(&["mapping", "check"]);
    assert_eq!(code(&o), 0, "mapping check: {}{}", stdout(&o), stderr(&o));

    play(stacks("absent"));
    assert!(!probes_d.join("login.toml").exists(), "decommissioned");
    let (_, out) = probe(&site, &[]);
    assert!(
        !out.contains("login1 ssh") && out.contains("portal"),
        "{out}"
    );
}

/// In `serve` a check that hangs until its timeout holds back no other
/// probe: a port that closes is down within seconds all the same.
#[test]
fn serve_is_not_held_back_by_a_hanging_check() {
    let port = TcpToggle::open();
    let site = site("");
    let hang = script(&site, "hang", "sleep 60");
    add_probes(
        &site,
        &format!(
            "{}timeout = \"30s\"\n\n[[sources.checks.probe]]\nname = \"ssh\"\ngroup = \"Checks\"\n\
             tcp = \"{}\"\ninterval = \"1s\"\nfailure_threshold = 1\n",
            command_probe("hang", &hang),
            port.addr
        ),
    );
    let _served = crate::common::Served::spawn(site.serve_cmd());
    crate::common::eventually("the first render", 15, || {
        site.path().join("out/index.json").exists()
    });
    port.close();
    let closed = std::time::Instant::now();
    crate::common::eventually("the closed port's outage", 15, || {
        std::fs::read_to_string(site.out("alpha/motd")).is_ok_and(|t| t.contains("[INCIDENT] ssh"))
    });
    assert!(
        closed.elapsed() < Duration::from_secs(15),
        "not after the hanging check's 30 s timeout"
    );
}

/// A plugin still running when `serve` stops is killed with its children.
#[test]
fn serve_stopping_kills_a_running_plugin_and_its_children() {
    let site = site("");
    let (hang, pidfile) = hang_with_child(&site);
    add_probes(
        &site,
        &format!("{}timeout = \"5m\"\n", command_probe("hang", &hang)),
    );
    let mut served = crate::common::Served::spawn(site.serve_cmd());
    crate::common::eventually("the plugin's child started", 30, || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
    });
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let term = std::process::Command::new("kill")
        .args(["-s", "TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    crate::common::eventually("serve stopped", 30, || {
        served.child.try_wait().unwrap().is_some()
    });
    crate::common::eventually("the plugin's child is gone", 10, || gone(&pid));
    served.kill();
}

#[test]
fn mapping_init_maps_the_probe_groups_before_any_probe_has_run() {
    let port = TcpToggle::open();
    let dir = tempfile::tempdir().unwrap();
    let probes_d = dir.path().join("probes.d");
    std::fs::create_dir(&probes_d).unwrap();
    std::fs::write(
        probes_d.join("login.toml"),
        format!(
            "[[probe]]\nname = \"login1 ssh\"\ngroup = \"Login nodes\"\ntcp = \"{}\"\n\n\
             [[probe]]\nname = \"work fs\"\ngroup = \"Storage\"\ntcp = \"{}\"\n",
            port.addr, port.addr
        ),
    )
    .unwrap();
    let site = Site::new(&format!(
        "[sources.checks]\nkind = \"probes\"\ninclude = [\"{}/*.toml\"]\n",
        probes_d.display()
    ));
    let o = site.run(&["mapping", "init", "--source", "checks"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let skeleton = stdout(&o);
    assert!(
        skeleton.contains("[clusters.login-nodes]") && skeleton.contains("[clusters.storage]"),
        "one cluster per probe group:\n{skeleton}"
    );
    assert!(skeleton.contains("include = ["), "{skeleton}");
    assert!(skeleton.contains("2 probe(s) configured"), "{skeleton}");

    // As printed, it is a working configuration (checked, as any probes
    // source, once a probe has run).
    std::fs::write(site.path().join("mapping.toml"), &skeleton).unwrap();
    let (exit, out) = probe(&site, &[]);
    assert_eq!(exit, 0, "{out}");
    let o = site.run(&["mapping", "check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = site.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(site.out("storage/motd").exists() && site.out("login-nodes/motd").exists());
}
