//! Upstream faults over v1 and v2: error statuses, `Retry-After`, rate
//! limits, hangs, resets, bad JSON, wrong shapes, failing pages of a paged
//! list, and a component list that suddenly empties (also under `serve`).

use super::*;

/// How a fault is set up on the fake.
enum Trouble {
    /// On every request.
    Everywhere(Fault),
    /// On one `path?query` alone, the rest answering state `b`.
    At(String, Fault),
    /// This body, with this status, for the main document.
    Body(u16, Vec<u8>),
    /// State `b` with no components at all.
    NoComponents,
}

struct Case {
    what: &'static str,
    trouble: Trouble,
    /// What stderr must say.
    says: &'static str,
}

fn cases(api: Api) -> Vec<Case> {
    let rate_limited = |status| {
        Trouble::Everywhere(Fault::RateLimited {
            status,
            retry_after: "3600".into(),
        })
    };
    let mut cases = vec![
        Case {
            what: "500",
            trouble: Trouble::Everywhere(Fault::Status(500)),
            says: "500",
        },
        Case {
            what: "502 with an HTML body",
            trouble: Trouble::Everywhere(Fault::StatusWithBody(
                502,
                "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
            )),
            says: "502",
        },
        Case {
            what: "420 with Retry-After longer than the bound",
            trouble: rate_limited(420),
            says: "420",
        },
        Case {
            what: "429 with Retry-After longer than the bound",
            trouble: rate_limited(429),
            says: "429",
        },
        Case {
            what: "hang past the timeout",
            trouble: Trouble::Everywhere(Fault::Hang),
            says: "timed out",
        },
        Case {
            what: "connection reset",
            trouble: Trouble::Everywhere(Fault::Reset),
            says: "connection",
        },
        Case {
            what: "truncated JSON",
            trouble: Trouble::Everywhere(Fault::Truncated),
            says: "invalid JSON",
        },
        Case {
            what: "HTML with 200",
            trouble: Trouble::Everywhere(Fault::Garbage),
            says: "invalid JSON",
        },
        // Invalid UTF-8 inside a JSON string is no fault any more: the bad
        // bytes become U+FFFD and the page is read
        // (`trust_source::one_bad_value_costs_one_incident_not_the_page`).
        Case {
            what: "empty component list after a full one",
            trouble: Trouble::NoComponents,
            says: "no components",
        },
    ];
    match api {
        Api::V2 => {
            cases.push(Case {
                what: "valid JSON of the wrong shape (a list for the summary)",
                trouble: Trouble::Body(200, b"[1, 2, 3]".to_vec()),
                says: "expected an object",
            });
            cases.push(Case {
                what: "valid JSON of the wrong shape (a number for the incidents)",
                trouble: Trouble::Body(200, br#"{"page": {"id": "x"}, "components": 7}"#.to_vec()),
                says: "unexpected JSON",
            });
            cases.push(Case {
                what: "one document of three failing (incidents.json 500)",
                trouble: Trouble::At("/api/v2/incidents.json".into(), Fault::Status(500)),
                says: "500",
            });
        }
        Api::V1 => {
            cases.push(Case {
                what: "valid JSON of the wrong shape (an object for a list)",
                trouble: Trouble::Body(200, br#"{"components": []}"#.to_vec()),
                says: "expected a list",
            });
            cases.push(Case {
                what: "page 2 of 2 of the component list failing (500)",
                trouble: Trouble::At(
                    format!("/pages/{PAGE}/components?page=2&per_page=100"),
                    Fault::Status(500),
                ),
                says: "500",
            });
            cases.push(Case {
                what: "page 2 of 2 of the component list cut short",
                trouble: Trouble::At(
                    format!("/pages/{PAGE}/components?page=2&per_page=100"),
                    Fault::Truncated,
                ),
                says: "invalid JSON",
            });
        }
    }
    cases
}

/// How often each fault is tried.
const FAULT_RUNS: usize = 3;

/// Renders state `a`, then for each fault, [`FAULT_RUNS`] times: switches
/// upstream to state `b` behind the fault and renders. Every run must exit 0
/// from the last good snapshot, say why on stderr, and leave every file and
/// the last good snapshot byte-identical and untouched. Clearing the fault
/// then brings state `b` through.
fn upstream_faults(api: Api) {
    let rig = Rig::new(api);
    // 150 components: the v1 component list takes two pages.
    rig.serve_state("a", 12, 150);
    rig.render_ok();
    let before = files_under(&rig.out());
    assert!(before["alpha/motd"].0.len() > 1000, "a long MOTD");
    let state_before = fs::read(rig.state_file()).unwrap();
    let mut tried = 0;
    for case in cases(api) {
        for run in 0..FAULT_RUNS {
            rig.serve_state("b", 12, 150);
            match &case.trouble {
                Trouble::Everywhere(f) => rig.fake.fault(f.clone()),
                Trouble::At(at, f) => rig.fake.fault_at(at, f.clone()),
                Trouble::Body(status, body) => {
                    rig.fake
                        .set_bytes(&rig.main_document(), *status, body.clone());
                }
                Trouble::NoComponents => rig.serve(&[], &incidents("b", 12)),
            }
            let started = Instant::now();
            let o = rig.run(&["render"]);
            rig.fake.clear_faults();
            let during = format!("{api:?} {} (run {run})", case.what);
            let err = stderr(&o);
            assert_eq!(
                code(&o),
                0,
                "{during}: the last good snapshot serves: {err}"
            );
            assert!(
                err.contains(case.says),
                "{during}: stderr should say {:?}: {err}",
                case.says
            );
            assert!(err.contains("last good snapshot"), "{during}: {err}");
            assert_eq!(stdout(&o), "", "{during}: nothing changed");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{during}: took {:?}",
                started.elapsed()
            );
            assert_same_files(&before, &files_under(&rig.out()), &during);
            assert!(
                fs::read(rig.state_file()).unwrap() == state_before,
                "{during}: the last good snapshot was replaced"
            );
            tried += 1;
        }
    }
    assert!(tried >= 36, "{tried}");
    // Healthy again: state `b` comes through at once.
    rig.serve_state("b", 12, 150);
    let o = rig.render_ok();
    assert!(stdout(&o).contains("updated alpha/motd"), "{}", stdout(&o));
    assert!(rig
        .site
        .read("alpha/motd")
        .contains("State b incident number 0"));
}

#[test]
fn upstream_faults_v2_keep_every_file_and_the_last_good_snapshot() {
    upstream_faults(Api::V2);
}

#[test]
fn upstream_faults_v1_keep_every_file_and_the_last_good_snapshot() {
    upstream_faults(Api::V1);
}

/// A short `Retry-After` is waited out, then the fetch succeeds.
fn retry_after_is_honoured(api: Api, status: u16) {
    let rig = Rig::new(api);
    rig.render_ok();
    rig.serve_state("b", 12, 3);
    rig.fake.fault_next(
        1,
        Fault::RateLimited {
            status,
            retry_after: "2".into(),
        },
    );
    let started = Instant::now();
    let o = rig.render_ok();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "{api:?} {status}: waited only {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "{api:?} {status}: took {took:?}"
    );
    assert!(stdout(&o).contains("updated alpha/motd"), "{}", stdout(&o));
    assert!(!stderr(&o).contains("last good snapshot"), "{}", stderr(&o));
}

#[test]
fn retry_after_420_and_429_is_waited_out_v1_and_v2() {
    for api in [Api::V1, Api::V2] {
        for status in [420, 429] {
            retry_after_is_honoured(api, status);
        }
    }
}

#[test]
fn endless_rate_limiting_gives_up_within_a_bound() {
    let rig = Rig::new(Api::V2);
    rig.render_ok();
    let before = files_under(&rig.out());
    rig.fake.fault(Fault::RateLimited {
        status: 429,
        retry_after: "1".into(),
    });
    let started = Instant::now();
    let o = rig.run(&["render"]);
    let took = started.elapsed();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("still answered 429"), "{}", stderr(&o));
    // Five waits of one second, then the last good snapshot.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert_same_files(&before, &files_under(&rig.out()), "endless 429");
}

#[test]
fn a_half_new_paged_list_is_never_used_v1() {
    // Page 1 of the components is state `b` (new names), page 2 fails: the
    // MOTD must not show `b` in any part, and the saved state stays `a`.
    let rig = Rig::new(Api::V1);
    rig.serve_state("a", 12, 150);
    rig.render_ok();
    let motd = rig.site.read("alpha/motd");
    let mut rows = component_rows(150);
    rows[0]["name"] = json!("Login nodes");
    rows[0]["status"] = json!("major_outage");
    rig.serve(&rows, &incidents("b", 12));
    rig.fake.fault_at(
        &format!("/pages/{PAGE}/components?page=2&per_page=100"),
        Fault::Reset,
    );
    let o = rig.run(&["render"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(rig.site.read("alpha/motd"), motd);
    let state = fs::read_to_string(rig.state_file()).unwrap();
    assert!(
        !state.contains("binc"),
        "state `b` was kept: {}",
        &state[..200]
    );
    assert!(!state.contains("major_outage"));
    let log = rig.fake.request_log();
    assert!(
        log.iter().any(|l| l.contains("components?page=2")),
        "page 2 was asked for: {log:?}"
    );
}

#[test]
fn an_empty_component_list_on_the_first_fetch_is_used() {
    // No history: an empty page is what the page is, not a drop.
    let rig = Rig::new(Api::V2);
    rig.serve(&[], &[]);
    let o = rig.run(&["render"]);
    assert_eq!(
        code(&o),
        3,
        "the mapping names a component the page lacks: {}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("suspicious"), "{}", stderr(&o));
}

#[test]
fn serve_keeps_the_last_good_data_when_every_component_vanishes() {
    let rig = serve_rig(Api::V2);
    let serve = start_serve(&rig, false);
    let expected = expected_motd(&rig);
    wait_for_motd(&rig, &expected, Duration::from_secs(15));
    // A refresh that is waited for: every file of the first render is done.
    let bearer = format!("Authorization: Bearer {REFRESH_TOKEN}\r\n");
    assert_eq!(
        post(serve.addr(), "/refresh?wait=true", &bearer, b"").0,
        200
    );
    let before = files_under(&rig.out());
    rig.serve(&[], &incidents("b", 16));
    let (status, report) = post(
        serve.addr(),
        "/refresh?wait=true",
        &format!("Authorization: Bearer {REFRESH_TOKEN}\r\n"),
        b"",
    );
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("no components"), "{report}");
    assert_same_files(
        &before,
        &files_under(&rig.out()),
        "serve: every component gone",
    );
    let (_, metrics) = get(serve.addr(), "/metrics");
    assert!(
        metrics.contains("statusmotd_refreshes_total{result=\"error\"} 1"),
        "{metrics}"
    );
    assert!(serve.log().contains("no components"), "{}", serve.log());
}
