#![allow(clippy::disallowed_methods)] // tests build their own scratch files

use std::path::Path;

use jiff::SignedDuration;

use super::*;
use crate::error::Result;

fn parse(text: &str) -> Result<Config> {
    Config::parse(text, Path::new("/etc/statusmotd/mapping.toml"))
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 3, "{e}");
            e.to_string()
        }
    }
}

const PUBLIC: &str =
    "[sources.github]\nkind = \"statuspage-public\"\nurl = \"https://www.githubstatus.com\"\n";

const FULL: &str = r#"
[settings]
output_dir = "/srv/motd"
state_dir = "/var/lib/statusmotd"
templates_dir = "templates"
timezone = "Europe/London"
upcoming = "3d"
recent_resolved = "12h"
stale_after = "1h"
poll_interval = "2m"
debounce = "0s"
request_timeout = "20s"
retries = 5

[sources.hpc]
kind = "statuspage"
page_id = "kctbh9vrtdwd"
api_key = { env = "STATUSPAGE_API_KEY" }
api_base = "http://127.0.0.1:9000/v1/"

[sources.github]
kind = "statuspage-public"
url = "https://www.githubstatus.com/"

[server]
listen = "[::]:8090"
webhook_token = { file = "webhook-token" }
refresh_token = { credential = "refresh-token" }
on_change = ["make", "-C", "/srv/motd", "deploy"]
on_change_timeout = "90s"

[clusters.archer2]
source = "hpc"
groups = ["ARCHER2"]
components = ["Lustre /work"]
page_wide = false
template = "archer2.txt.j2"
timezone = "UTC"

[clusters.gh]
source = "github"
components = ["Git Operations"]

[[outputs]]
template = "ood.md.j2"
path = "{cluster}/motd.md"
"#;

#[test]
fn full_example_parses_with_every_key() {
    let c = parse(FULL).unwrap();
    let s = &c.settings;
    assert_eq!(s.output_dir, Path::new("/srv/motd"));
    assert_eq!(s.state_dir, Path::new("/var/lib/statusmotd"));
    assert_eq!(
        s.templates_dir.as_deref(),
        Some(Path::new("/etc/statusmotd/templates"))
    );
    assert_eq!(s.timezone.as_deref(), Some("Europe/London"));
    assert_eq!(s.upcoming, SignedDuration::from_hours(72));
    assert_eq!(s.recent_resolved, SignedDuration::from_hours(12));
    assert_eq!(s.stale_after, SignedDuration::from_hours(1));
    assert_eq!(s.poll_interval, SignedDuration::from_mins(2));
    assert_eq!(s.debounce, SignedDuration::ZERO);
    assert_eq!(s.request_timeout, SignedDuration::from_secs(20));
    assert_eq!(s.retries, 5);

    assert_eq!(
        c.sources["hpc"].kind,
        SourceKind::Manage {
            page_id: "kctbh9vrtdwd".into(),
            api_key: Secret::Env("STATUSPAGE_API_KEY".into()),
            api_base: "http://127.0.0.1:9000/v1".into(),
        }
    );
    assert_eq!(
        c.sources["github"].kind,
        SourceKind::Public {
            url: "https://www.githubstatus.com".into()
        }
    );
    assert_eq!(c.server.listen, "[::]:8090");
    assert_eq!(
        c.server.webhook_token,
        Some(Secret::File("/etc/statusmotd/webhook-token".into()))
    );
    assert_eq!(
        c.server.refresh_token,
        Some(Secret::Credential("refresh-token".into()))
    );
    assert_eq!(c.server.on_change, ["make", "-C", "/srv/motd", "deploy"]);
    assert_eq!(c.server.on_change_timeout, SignedDuration::from_secs(90));

    let a = &c.clusters["archer2"];
    assert_eq!(a.name, "archer2");
    assert_eq!(a.source, "hpc");
    assert_eq!(a.groups, ["ARCHER2"]);
    assert_eq!(a.components, ["Lustre /work"]);
    assert!(!a.page_wide);
    assert_eq!(a.template.as_deref(), Some("archer2.txt.j2"));
    assert_eq!(c.timezone_for(a), "UTC");
    let gh = &c.clusters["gh"];
    assert!(gh.page_wide);
    assert_eq!(c.timezone_for(gh), "Europe/London");
    assert_eq!(c.cluster_names().collect::<Vec<_>>(), ["archer2", "gh"]);

    assert_eq!(
        c.outputs,
        [OutputConfig {
            template: "ood.md.j2".into(),
            path: "{cluster}/motd.md".into()
        }]
    );
}

#[test]
fn defaults_apply_and_relative_dirs_join_the_config_dir() {
    let text = format!("{PUBLIC}[clusters.web]\ncomponents = [\"Pages\"]\n");
    let c = Config::parse(&text, Path::new("/srv/conf/mapping.toml")).unwrap();
    let s = &c.settings;
    assert_eq!(s.output_dir, Path::new("/srv/conf/out"));
    assert_eq!(s.state_dir, Path::new("/srv/conf/state"));
    assert_eq!(s.templates_dir, None);
    assert_eq!(s.timezone, None);
    assert_eq!(s.upcoming, SignedDuration::from_hours(7 * 24));
    assert_eq!(s.recent_resolved, SignedDuration::from_hours(24));
    assert_eq!(s.stale_after, SignedDuration::from_mins(30));
    assert_eq!(s.poll_interval, SignedDuration::from_mins(5));
    assert_eq!(s.debounce, SignedDuration::from_secs(1));
    assert_eq!(s.request_timeout, SignedDuration::from_secs(10));
    assert_eq!(s.retries, 3);
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.server.listen, "127.0.0.1:8089");
    assert!(c.outputs.is_empty());
    // One source: the cluster reads it without saying so.
    assert_eq!(c.clusters["web"].source, "github");
    assert!(c.clusters["web"].page_wide);
    assert!(!c.timezone_for(&c.clusters["web"]).is_empty());
}

#[test]
fn relative_config_path_still_gives_absolute_dirs() {
    let c = Config::parse(PUBLIC, Path::new("mapping.toml")).unwrap();
    assert!(c.settings.output_dir.is_absolute());
    assert!(c.settings.output_dir.ends_with("out"));
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = parse_err(&format!("{PUBLIC}\n[settings]\noutput_dri = \"x\"\n"));
    assert!(
        e.contains("invalid configuration in `/etc/statusmotd/mapping.toml`"),
        "{e}"
    );
    assert!(e.contains("line 6"), "{e}");
    assert!(e.contains("output_dri"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn bad_duration_names_its_line() {
    let e = parse_err(&format!("{PUBLIC}[settings]\nupcoming = \"7 days\"\n"));
    assert!(e.contains("line 5"), "{e}");
    assert!(e.contains("upcoming = \"7 days\""), "{e}");
    assert!(e.contains("`d` days"), "{e}");
}

#[test]
fn zero_poll_interval_is_rejected() {
    let e = parse_err(&format!("{PUBLIC}[settings]\npoll_interval = \"0s\"\n"));
    assert!(e.contains("line 5") && e.contains("zero"), "{e}");
}

#[test]
fn unsafe_cluster_names_are_rejected_naming_the_cluster() {
    for (name, why) in [
        ("a/b", "`/`"),
        ("..", "starts with `.`"),
        (".x", "starts with `.`"),
    ] {
        let e = parse_err(&format!(
            "{PUBLIC}[clusters.\"{name}\"]\ncomponents = [\"Pages\"]\n"
        ));
        assert!(e.contains(&format!("`{name}`")), "{e}");
        assert!(e.contains(why), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("invalid cluster name"), "{e}");
    }
}

#[test]
fn bad_timezones_are_rejected() {
    let e = parse_err(&format!(
        "{PUBLIC}[settings]\ntimezone = \"Mars/Olympus\"\n"
    ));
    assert!(
        e.contains("unknown time zone `Mars/Olympus`") && e.contains("line 5"),
        "{e}"
    );
    let e = parse_err(&format!(
        "{PUBLIC}[clusters.x]\ncomponents = [\"Pages\"]\ntimezone = \"Europe/Londn\"\n"
    ));
    assert!(e.contains("Europe/Londn") && e.contains("line 6"), "{e}");
}

#[test]
fn unknown_kind_lists_the_kinds() {
    let e = parse_err("[sources.x]\nkind = \"statuspage-v3\"\n");
    assert!(e.contains("unknown source kind `statuspage-v3`"), "{e}");
    assert!(
        e.contains("`statuspage`") && e.contains("`statuspage-public`"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn kind_keys_are_cross_checked() {
    let e = parse_err("[sources.hpc]\nkind = \"statuspage\"\napi_key = { env = \"K\" }\n");
    assert!(
        e.contains("source `hpc` of kind `statuspage` needs `page_id`"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");
    let e = parse_err(
            "[sources.gh]\nkind = \"statuspage-public\"\nurl = \"https://x.example\"\npage_id = \"abc\"\n",
        );
    assert!(
        e.contains("`page_id` is not a key of kind `statuspage-public`"),
        "{e}"
    );
    assert!(e.contains("line 4"), "{e}");
    let e = parse_err(
            "[sources.gh]\nkind = \"statuspage-public\"\nurl = \"https://www.githubstatus.com/api/v2/summary.json\"\n",
        );
    assert!(e.contains("url = \"https://www.githubstatus.com\""), "{e}");
}

#[test]
fn bare_string_secret_is_rejected_without_echoing_it() {
    let e = parse_err(
        "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\napi_key = \"s3cr3t-value\"\n",
    );
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("{ env = \"NAME\" }"), "{e}");
    assert!(e.contains("hint:"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
}

#[test]
fn secret_forms_are_checked() {
    let e = parse_err(&format!(
        "{PUBLIC}[server]\nwebhook_token = {{ credential = \"../x\" }}\n"
    ));
    assert!(e.contains("invalid credential name `../x`"), "{e}");
    let e = parse_err(&format!(
        "{PUBLIC}[server]\nwebhook_token = {{ env = \"A\", file = \"b\" }}\n"
    ));
    assert!(e.contains("exactly one"), "{e}");
    let e = parse_err(&format!(
        "{PUBLIC}[server]\nwebhook_token = {{ vault = \"x\" }}\n"
    ));
    assert!(e.contains("unknown secret source `vault`"), "{e}");
}

#[test]
fn env_secret_names_the_variable_and_never_the_value() {
    let secret = Secret::Env("STATUSMOTD_TEST_SECRET_ENV_1".into());
    let e = secret.reveal("the `api_key` of source `hpc`").unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("environment variable `STATUSMOTD_TEST_SECRET_ENV_1` is not set"),
        "{e}"
    );
    assert!(e.contains("the `api_key` of source `hpc`"), "{e}");

    std::env::set_var("STATUSMOTD_TEST_SECRET_ENV_2", "hunter2-value");
    let secret = Secret::Env("STATUSMOTD_TEST_SECRET_ENV_2".into());
    assert_eq!(secret.reveal("test").unwrap(), "hunter2-value");
    assert!(!format!("{secret:?}").contains("hunter2"));
    assert!(!format!("{secret}").contains("hunter2"));

    let empty = |_: &str| Some(std::ffi::OsString::new());
    let e = secret.reveal_with("test", empty).unwrap_err().to_string();
    assert!(e.contains("is not set"), "{e}");
}

#[test]
fn file_and_credential_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-key"), "k3y\n").unwrap();
    let no_env = |_: &str| None;

    let file = Secret::File(dir.path().join("api-key"));
    assert_eq!(file.reveal_with("test", no_env).unwrap(), "k3y");
    let missing = Secret::File(dir.path().join("nope"));
    let e = missing.reveal_with("test", no_env).unwrap_err().to_string();
    assert!(e.contains("cannot read") && e.contains("nope"), "{e}");

    let cred = Secret::Credential("api-key".into());
    let e = cred.reveal_with("test", no_env).unwrap_err().to_string();
    assert!(e.contains("`CREDENTIALS_DIRECTORY` is not set"), "{e}");
    assert!(e.contains("LoadCredential=api-key"), "{e}");
    let dir_path = dir.path().as_os_str().to_owned();
    let with_dir = move |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| dir_path.clone());
    assert_eq!(cred.reveal_with("test", with_dir).unwrap(), "k3y");
}

#[test]
fn relative_secret_files_join_the_config_dir() {
    let text = "[sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\napi_key = { file = \"keys/api\" }\n";
    let c = Config::parse(text, Path::new("/srv/conf/mapping.toml")).unwrap();
    let SourceKind::Manage {
        api_key, api_base, ..
    } = &c.sources["hpc"].kind
    else {
        panic!("wrong kind")
    };
    assert_eq!(api_key, &Secret::File("/srv/conf/keys/api".into()));
    assert_eq!(api_base, DEFAULT_API_BASE);
}

#[test]
fn also_sources_are_read_checked_and_listed_after_the_primary() {
    let two = format!(
            "{PUBLIC}[sources.hpc]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n"
        );
    let c = parse(&format!(
        "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n\
             [clusters.a.also.github]\ncomponents = [\"Actions\"]\n"
    ))
    .unwrap();
    let a = &c.clusters["a"];
    assert_eq!(a.sources().collect::<Vec<_>>(), ["hpc", "github"]);
    assert!(!a.also[0].page_wide, "default false for `also`");
    let parts = a.parts();
    assert_eq!(parts[1].source, "github");
    assert_eq!(parts[1].components, ["Actions"]);
    assert!(parts[1].groups.is_empty());

    let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.nope]\ncomponents = [\"x\"]\n"
        ));
    assert!(e.contains("source `nope` in `also` is not defined"), "{e}");
    assert!(e.contains("line 10"), "{e}");
    let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.hpc]\ncomponents = [\"x\"]\n"
        ));
    assert!(e.contains("is its primary `source`"), "{e}");
    let e = parse_err(&format!(
        "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.github]\n"
    ));
    assert!(e.contains("selects nothing from source `github`"), "{e}");
    let e = parse_err(&format!(
            "{two}[clusters.a]\nsource = \"hpc\"\ngroups = [\"A\"]\n[clusters.a.also.github]\ncomponent = [\"x\"]\n"
        ));
    assert!(e.contains("unknown field `component`"), "{e}");
}

#[test]
fn cluster_source_is_resolved_or_required() {
    let two = format!(
            "{PUBLIC}[sources.other]\nkind = \"statuspage-public\"\nurl = \"https://status.example.com\"\n"
        );
    let e = parse_err(&format!("{two}[clusters.web]\ncomponents = [\"Pages\"]\n"));
    assert!(
        e.contains("cluster `web` does not say which source it reads"),
        "{e}"
    );
    assert!(e.contains("`github`, `other`"), "{e}");
    assert!(e.contains("line 7"), "{e}");

    let e = parse_err(&format!(
        "{two}[clusters.web]\nsource = \"gihtub\"\ncomponents = [\"Pages\"]\n"
    ));
    assert!(
        e.contains("cluster `web`: source `gihtub` is not defined"),
        "{e}"
    );
    assert!(e.contains("line 8") && e.contains("^^^^^^^^"), "{e}");
}

#[test]
fn empty_cluster_and_no_source_are_errors() {
    let e = parse_err(&format!("{PUBLIC}[clusters.web]\npage_wide = true\n"));
    assert!(e.contains("cluster `web` selects nothing"), "{e}");
    let e = parse_err("[settings]\nretries = 1\n");
    assert!(e.contains("no source is defined"), "{e}");
}

#[test]
fn template_and_output_paths_are_checked() {
    let e = parse_err(&format!(
        "{PUBLIC}[clusters.web]\ncomponents = [\"Pages\"]\ntemplate = \"../motd.txt.j2\"\n"
    ));
    assert!(e.contains("invalid template name `../motd.txt.j2`"), "{e}");
    for bad in [
        "motd.md",
        "/abs/{cluster}.md",
        "{cluster}/../x",
        "{cluster}/motd",
        "{cluster}/maintenance.ics",
        "{name}/{cluster}",
    ] {
        let e = parse_err(&format!(
            "{PUBLIC}[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{bad}\"\n"
        ));
        assert!(e.contains(&format!("output path `{bad}`")), "{e}");
    }
    let e = parse_err(&format!("{PUBLIC}[server]\non_change = []\n"));
    assert!(e.contains("`on_change` needs a program"), "{e}");
    let e = parse_err(&format!("{PUBLIC}[server]\nlisten = \"localhost\"\n"));
    assert!(e.contains("invalid listen address `localhost`"), "{e}");
}

/// A config with one cluster per name (all reading `Pages`) and the
/// given `[[outputs]]` paths.
fn with_outputs(clusters: &[&str], paths: &[&str]) -> String {
    let clusters = clusters
        .iter()
        .map(|c| format!("[clusters.\"{c}\"]\ncomponents = [\"Pages\"]\n"));
    let outputs = paths
        .iter()
        .map(|p| format!("[[outputs]]\ntemplate = \"ood.md.j2\"\npath = \"{p}\"\n"));
    std::iter::once(PUBLIC.to_owned())
        .chain(clusters)
        .chain(outputs)
        .collect()
}

#[test]
fn outputs_that_cannot_be_written_are_refused_naming_the_entry() {
    #[rustfmt::skip]
        let cases: [(&[&str], &[&str], &str); 9] = [
            (&["web"], &["{cluster}"], "the cluster's directory itself"),
            (&["web"], &[".statusmotd/{cluster}"], "inside `.statusmotd`"),
            (&["a", "a-ood"], &["{cluster}-ood/motd.md"], "lies inside the directory of cluster `a-ood`"),
            (&["a", "a.md"], &["{cluster}.md"], "is also the directory of cluster `a.md`"),
            (&["a", "ood"], &["ood/{cluster}.md"], "lies inside the directory of cluster `ood`"),
            (&["index"], &["{cluster}.json"], "is also the index file `index.json`"),
            (&["web"], &["{cluster}/x", "{cluster}/x/y"], "needs `web/x` to be a directory, but that is output path `{cluster}/x`"),
            (&["o"], &["o{cluster}/m", "{cluster}o/m"], "is also output path `o{cluster}/m` (`[[outputs]]` entry 1) for cluster `o`"),
            (&["a", "a2"], &["{cluster}2/maintenance.ics"], "is also the `maintenance.ics` of cluster `a2`"),
        ];
    for (clusters, paths, why) in cases {
        let e = parse_err(&with_outputs(clusters, paths));
        assert!(e.contains(why), "{paths:?}: {e}");
        assert!(e.contains("hint:"), "{paths:?}: {e}");
        assert!(e.contains("at line"), "points at the entry: {e}");
    }
    // The entry blamed is named, and its line is the one shown.
    let e = parse_err(&with_outputs(
        &["a", "a-ood"],
        &["{cluster}/motd.md", "{cluster}-ood/motd.md"],
    ));
    assert!(
        e.contains("(`[[outputs]]` entry 2) is `a-ood/motd.md` for cluster `a`"),
        "{e}"
    );
    assert!(e.contains("| path = \"{cluster}-ood/motd.md\""), "{e}");
}

#[test]
fn outputs_that_fit_are_accepted() {
    let text = with_outputs(
        &["a", "b", "a-b"],
        &[
            "{cluster}/motd.md",
            "ood/{cluster}.md",
            "{cluster}/ood/banner.txt",
        ],
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.outputs.len(), 3);
}

#[test]
fn output_dir_must_not_be_the_root() {
    for bad in ["/", "/.", "//", "/srv/..", "/../.."] {
        let e = parse_err(&format!("{PUBLIC}[settings]\noutput_dir = \"{bad}\"\n"));
        assert!(e.contains("is the root directory"), "{bad}: {e}");
        assert!(e.contains("hint:") && e.contains("at line"), "{bad}: {e}");
    }
    for ok in ["/srv/motd", ".", "out", "../out"] {
        let text = format!("{PUBLIC}[settings]\noutput_dir = \"{ok}\"\n");
        assert!(parse(&text).is_ok(), "{ok}");
    }
}

#[test]
fn the_shipped_mapping_toml_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mapping.toml");
    let c = Config::load(&path).unwrap();
    assert!(c.sources.contains_key("github"));
    assert!(c.clusters.len() >= 2);
    assert!(c.clusters.values().all(|cl| cl.source == "github"));
}

#[test]
fn missing_file_is_a_config_error() {
    let e = Config::load(Path::new("/nonexistent/mapping.toml")).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e
        .to_string()
        .contains("cannot read `/nonexistent/mapping.toml`"));
}

#[test]
fn durations() {
    let ok = [
        ("0s", 0),
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86_400),
        ("7d", 604_800),
        ("1w", 604_800),
        ("1h30m", 5400),
        ("1d12h", 129_600),
    ];
    for (s, secs) in ok {
        assert_eq!(
            parse_duration(s),
            Ok(SignedDuration::from_secs(secs)),
            "{s}"
        );
    }
    for bad in [
        "",
        "5",
        "-5m",
        "5x",
        "m",
        "1.5h",
        " 5m",
        "5m ",
        "1h30",
        "99999999999999999999s",
        "9223372036854775807w",
    ] {
        let e = parse_duration(bad).unwrap_err();
        assert!(!e.is_empty(), "{bad}");
    }
    assert!(parse_duration("5x").unwrap_err().contains("`s` seconds"));
}

#[test]
fn cluster_names() {
    for ok in ["archer2", "cirrus-ex", "A_b.c", "x", &"a".repeat(64)] {
        assert_eq!(validate_cluster_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "a/b",
        "..",
        ".",
        ".hidden",
        "a b",
        "ä",
        &"a".repeat(65),
        "index.json",
        "a\\b",
        "-x",
        "--help",
    ] {
        assert!(validate_cluster_name(bad).is_err(), "{bad}");
    }
}

mod prop {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cluster_name_never_escapes(s in ".{0,70}") {
            if validate_cluster_name(&s).is_ok() {
                prop_assert!(!s.contains('/'));
                prop_assert!(s != ".." && s != ".");
                prop_assert!(!s.starts_with('.'));
            }
        }

        #[test]
        fn cluster_name_with_slash_rejected(a in "[a-z.]{0,10}", b in "[a-z.]{0,10}") {
            let name = format!("{a}/{b}");
            prop_assert!(validate_cluster_name(&name).is_err());
        }

        // Random strings are almost never valid names, so the property
        // above rarely sees an accepted one. These draw from the allowed
        // alphabet plus the characters that matter for paths, so both
        // answers come up often, and compare with the rule written out.
        #[test]
        fn cluster_name_accepted_exactly_by_the_rule(
            s in "[A-Za-z0-9._/\\\\ %\\x00\\n\\u{2024}\\u{202e}-]{0,70}"
        ) {
            let by_rule = !s.is_empty()
                && s.len() <= 64
                && !s.starts_with('.')
                && !s.starts_with('-')
                && s != "index.json"
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            prop_assert_eq!(validate_cluster_name(&s).is_ok(), by_rule, "{:?}", s);
        }

        // `check_layout` walks no path when there is no `[[outputs]]`
        // entry: the clusters' own paths never collide when their names
        // pass `validate_cluster_name`. Names that would collide (the
        // staging directory, the index) are drawn too, to be refused.
        #[test]
        fn clusters_alone_never_collide(
            names in prop::collection::btree_set(
                prop_oneof![
                    "[A-Za-z0-9._-]{1,12}",
                    Just(crate::output::STAGING_DIR.to_owned()),
                    Just("index.json".to_owned()),
                ],
                1..12,
            )
        ) {
            let names: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| validate_cluster_name(n).is_ok())
                .collect();
            prop_assert_eq!(super::super::validate::check_claims(&names, &[]), Ok(()));
        }

        #[test]
        fn cluster_name_from_the_alphabet_is_accepted(s in "[A-Za-z0-9_][A-Za-z0-9._-]{0,63}") {
            prop_assume!(s != "index.json");
            prop_assert!(validate_cluster_name(&s).is_ok(), "{:?}", s);
            // And it stays one directory below the output root.
            let path = std::path::Path::new("out").join(&s);
            prop_assert_eq!(path.parent(), Some(std::path::Path::new("out")));
            prop_assert_eq!(path.components().count(), 2);
        }

        #[test]
        fn cluster_name_with_one_bad_character_is_rejected(
            a in "[a-z0-9]{1,20}",
            bad in "[^A-Za-z0-9._-]",
            b in "[a-z0-9]{0,20}",
        ) {
            let name = format!("{a}{bad}{b}");
            prop_assert!(validate_cluster_name(&name).is_err(), "{:?}", name);
        }

        #[test]
        fn parse_duration_adds_its_parts(h in 0i64..100_000, m in 0i64..100_000, s in 0i64..100_000) {
            prop_assert_eq!(
                parse_duration(&format!("{h}h{m}m{s}s")),
                Ok(SignedDuration::from_secs(h * 3600 + m * 60 + s))
            );
        }

        #[test]
        fn parse_duration_overflow_is_an_error(n in 16_000_000_000_000u64..u64::MAX, unit in "[smhdw]") {
            // Above i64::MAX seconds for every unit but `s` with small
            // numbers; never a panic, never a wrapped value.
            let text = format!("{n}{unit}{n}{unit}");
            match parse_duration(&text) {
                Ok(d) => prop_assert!(d.as_secs() >= 0, "{} -> {:?}", text, d),
                Err(e) => prop_assert!(e.contains("too long"), "{}", e),
            }
        }

        #[test]
        fn parse_duration_rejects_what_is_not_number_and_unit(s in "[0-9smhdw .,:+-]{0,20}") {
            let well_formed = !s.is_empty() && {
                let mut rest = s.as_str();
                let mut ok = true;
                while !rest.is_empty() {
                    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                    let unit = rest[digits..].chars().next();
                    if digits == 0 || !matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'w')) {
                        ok = false;
                        break;
                    }
                    rest = &rest[digits + 1..];
                }
                ok
            };
            if !well_formed {
                prop_assert!(parse_duration(&s).is_err(), "{:?} accepted", s);
            }
        }

        #[test]
        fn parse_duration_never_panics(s in "\\PC{0,30}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn parse_duration_round_trips(n in 0i64..1_000_000_000, unit in 0usize..5) {
            let (suffix, secs) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)][unit];
            prop_assert_eq!(
                parse_duration(&format!("{n}{suffix}")),
                Ok(SignedDuration::from_secs(n * secs))
            );
        }
    }
}
