//! Crashes: `render` and `serve` killed with SIGKILL at random moments
//! while a reader re-reads the MOTDs; every read must be a whole version.

use super::*;

/// A small xorshift, seeded from the clock and printed, so a failing run can
/// be replayed with `STATUSMOTD_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("STATUSMOTD_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos(),
                ) | 1
            });
        eprintln!("crash test seed: {seed} (STATUSMOTD_CRASH_SEED replays it)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// How many renders the crash test kills; `STATUSMOTD_CRASH_KILLS` raises it.
fn crash_kills() -> usize {
    env_number("STATUSMOTD_CRASH_KILLS", 100)
}

/// Whether `name` ends in `.{ext}`, in any case: a `.TMP` is a temp file too.
fn has_extension(name: &str, ext: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Files in cluster directories that are not ours: temp files, dotfiles.
fn strays(out: &Path) -> Vec<String> {
    let mut found = Vec::new();
    walk(out, &mut |path| {
        let rel = path
            .strip_prefix(out)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if rel.starts_with(".statusmotd/") {
            return;
        }
        let ours = rel == "index.json"
            || name == "motd"
            || name == "maintenance.ics"
            || (rel.contains("/items/") && has_extension(&name, "txt") && !name.starts_with('.'));
        if !ours || has_extension(&name, "tmp") {
            found.push(rel);
        }
    });
    found
}

/// The MOTDs of both clusters in states `a` and `b`, and every snippet name,
/// from clean renders; with the typical render time.
struct Versions {
    motds: BTreeMap<&'static str, BTreeSet<Vec<u8>>>,
    snippets: BTreeSet<String>,
    typical: Duration,
}

fn versions(rig: &Rig) -> Versions {
    let mut motds: BTreeMap<&'static str, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut snippets = BTreeSet::new();
    let mut times = Vec::new();
    for tag in ["a", "b", "a", "b"] {
        rig.serve_state(tag, 16, 3);
        let started = Instant::now();
        rig.render_ok();
        times.push(started.elapsed());
        for cluster in ["alpha", "beta"] {
            motds
                .entry(cluster)
                .or_default()
                .insert(fs::read(rig.site.out(&format!("{cluster}/motd"))).unwrap());
            for e in fs::read_dir(rig.site.out(&format!("{cluster}/items"))).unwrap() {
                snippets.insert(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    for (cluster, versions) in &motds {
        assert_eq!(versions.len(), 2, "{cluster}: two distinct versions");
        assert!(
            versions.iter().all(|v| v.len() > 2000),
            "{cluster}: long MOTDs"
        );
    }
    times.sort();
    Versions {
        motds,
        snippets,
        typical: times[1],
    }
}

/// A thread re-reading both MOTDs and the index as fast as it can; each read
/// must be one of the known versions. [`Reader::stop`] returns the count.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    fn start(out: PathBuf, motds: BTreeMap<&'static str, BTreeSet<Vec<u8>>>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, reads) = (stop.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (cluster, versions) in &motds {
                        let bytes = fs::read(out.join(cluster).join("motd"))
                            .unwrap_or_else(|e| panic!("{cluster}/motd unreadable: {e}"));
                        assert!(
                            versions.contains(&bytes),
                            "{cluster}/motd is neither version ({} bytes)",
                            bytes.len()
                        );
                    }
                    let index = fs::read(out.join("index.json")).unwrap();
                    serde_json::from_slice::<Value>(&index).expect("index.json is whole");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Reader {
            stop,
            reads,
            thread,
        }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the reader saw only whole versions");
        self.reads.load(Ordering::Relaxed)
    }
}

/// After a kill: no stray file in a cluster directory, only known snippets,
/// and a whole last good snapshot.
fn check_after_kill(rig: &Rig, v: &Versions, i: usize) {
    let stray = strays(&rig.out());
    assert!(stray.is_empty(), "after kill {i}: stray files {stray:?}");
    for cluster in ["alpha", "beta"] {
        for e in fs::read_dir(rig.site.out(&format!("{cluster}/items"))).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                v.snippets.contains(&name),
                "unknown snippet {cluster}/items/{name}"
            );
        }
    }
    statusmotd::snapshot::load(&rig.state_file()).unwrap_or_else(|e| panic!("after kill {i}: {e}"));
}

/// A clean render after the kills: the right state, nothing left in the
/// staging directory or in `state_dir`.
fn check_recovery(rig: &Rig, v: &Versions) {
    rig.serve_state("b", 16, 3);
    rig.render_ok();
    assert!(v.motds["alpha"].contains(&fs::read(rig.site.out("alpha/motd")).unwrap()));
    assert!(rig.site.read("alpha/motd").contains("State b"));
    let staging: Vec<_> = fs::read_dir(rig.out().join(".statusmotd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(staging, ["lock"]);
    let state_temps: Vec<_> = fs::read_dir(rig.site.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| has_extension(n, "tmp"))
        .collect();
    assert!(
        state_temps.is_empty(),
        "temp files left in state_dir: {state_temps:?}"
    );
}

#[test]
fn sigkill_during_renders_never_shows_a_partial_file() {
    let rig = Rig::new(Api::V2);
    let v = versions(&rig);
    let window = u64::try_from(v.typical.as_micros() * 3 / 2).unwrap();
    let reader = Reader::start(rig.out(), v.motds.clone());
    let mut rng = Rng::new();
    let (mut killed, mut finished) = (0, 0);
    for i in 0..crash_kills() {
        rig.serve_state(if i % 2 == 0 { "a" } else { "b" }, 16, 3);
        let mut child = rig
            .std_cmd(&["render"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        if child.try_wait().unwrap().is_some() {
            finished += 1;
        } else {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        check_after_kill(&rig, &v, i);
    }
    let reads = reader.stop();
    eprintln!(
        "crash test: {killed} renders killed mid-run, {finished} finished first, \
         {reads} reads of both MOTDs and the index, typical render {:?}",
        v.typical
    );
    assert!(
        killed >= crash_kills() / 4,
        "too few kills landed: {killed}"
    );
    assert!(reads > 100, "the reader ran: {reads}");
    check_recovery(&rig, &v);
}

fn serve_kills() -> usize {
    env_number("STATUSMOTD_SERVE_KILLS", 40)
}

#[test]
fn sigkill_of_serve_mid_refresh_never_shows_a_partial_file() {
    let rig = serve_rig(Api::V2);
    let v = versions(&rig);
    let reader = Reader::start(rig.out(), v.motds.clone());
    let mut rng = Rng::new();
    let mut wrote = 0;
    for i in 0..serve_kills() {
        rig.serve_state(if i % 2 == 0 { "a" } else { "b" }, 16, 3);
        let mut serve = start_serve(&rig, false);
        // The start renders from the persisted snapshot and refreshes; a
        // refresh asked for now makes a second write likely.
        let (status, _) = post(
            serve.addr(),
            "/refresh",
            &format!("Authorization: Bearer {REFRESH_TOKEN}\r\n"),
            b"",
        );
        assert_eq!(status, 202, "kill {i}");
        let before = fs::metadata(rig.site.out("alpha/motd")).unwrap().ino();
        std::thread::sleep(Duration::from_micros(rng.below(400_000)));
        serve.kill();
        if fs::metadata(rig.site.out("alpha/motd")).unwrap().ino() != before {
            wrote += 1;
        }
        check_after_kill(&rig, &v, i);
    }
    let reads = reader.stop();
    eprintln!(
        "serve crash test: {} serve processes killed, {wrote} of them after replacing alpha/motd, {reads} reads",
        serve_kills()
    );
    assert!(reads > 100, "the reader ran: {reads}");
    check_recovery(&rig, &v);
}
