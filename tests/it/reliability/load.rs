//! Load with faults: webhooks at 1,000 per second into `serve` while the
//! fake upstream flaps between healthy and hanging.

use super::*;

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Seconds of load: 5 in CI, `STATUSMOTD_LOAD_SECONDS` for the full run.
fn load_seconds() -> u64 {
    env_number("STATUSMOTD_LOAD_SECONDS", 5)
}

#[test]
fn webhooks_under_load_while_upstream_flaps() {
    let rig = serve_rig(Api::V2);
    let serve = start_serve(&rig, false);
    let pid = serve.child.id();
    wait_for_motd(&rig, &expected_motd(&rig), Duration::from_secs(15));
    let seconds = load_seconds();
    let rate = 1000u64;
    let url = serve.url(&format!("/webhook/{WEBHOOK_TOKEN}"));

    // Upstream: healthy (alternating state) for 500 ms, hanging for 500 ms.
    let mut rss = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sent, statuses) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let body = webhook_body();
        let limit = Arc::new(tokio::sync::Semaphore::new(128));
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut phase = 0u128;
        let mut next_sample = Instant::now();
        while started.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            let now_phase = started.elapsed().as_millis() / 500;
            if now_phase != phase {
                phase = now_phase;
                if phase % 2 == 1 {
                    rig.fake.fault(Fault::Hang);
                } else {
                    rig.fake.clear_faults();
                    rig.serve_state(if phase.is_multiple_of(4) { "a" } else { "b" }, 16, 3);
                }
            }
            if Instant::now() >= next_sample {
                rss.push(rss_kib(pid).expect("serve is running"));
                next_sample += Duration::from_millis(250);
            }
            let permit = limit.clone().acquire_owned().await.unwrap();
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.spawn(async move {
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                drop(permit);
                status
            });
            sent += 1;
        }
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        while let Some(s) = tasks.join_next().await {
            *statuses.entry(s.unwrap()).or_default() += 1;
        }
        (sent, statuses)
    });

    // The final upstream state comes through.
    rig.fake.clear_faults();
    rig.serve_state("b", 16, 3);
    let expected = expected_motd(&rig);
    let (status, _) = post(
        serve.addr(),
        &format!("/webhook/{WEBHOOK_TOKEN}"),
        "",
        &webhook_body(),
    );
    assert_eq!(status, 202);
    wait_for_motd(&rig, &expected, Duration::from_secs(20));

    let accepted = statuses.get(&202).copied().unwrap_or(0);
    let third = rss.len() / 3;
    let first = *rss[..third.max(1)].iter().max().unwrap();
    let last = *rss[rss.len() - third.max(1)..].iter().max().unwrap();
    let (_, metrics) = get(serve.addr(), "/metrics");
    eprintln!(
        "load: {sent} webhooks in {seconds}s ({} per s), answers {statuses:?}; \
         VmRSS KiB first third max {first}, last third max {last}, all {rss:?}",
        sent / seconds
    );
    assert!(sent >= rate * seconds * 9 / 10, "only {sent} sent");
    assert_eq!(accepted, sent, "every webhook answered 202: {statuses:?}");
    assert!(
        last <= first + first / 2 + 16 * 1024,
        "memory grew: {first} KiB -> {last} KiB"
    );
    assert!(
        metrics.contains("statusmotd_webhooks_total{outcome=\"accepted\"}"),
        "{metrics}"
    );
}
