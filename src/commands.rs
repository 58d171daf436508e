//! One function per subcommand: read the config, run the pipeline, print
//! what a person or a script needs, return the exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::cli::{
    ConfigArg, DemoArgs, FetchArgs, GateArgs, MappingCommand, NotifyCommand, ProbeArgs, RenderArgs,
    ShowArgs,
};
use crate::config::{self, Config, SourceConfig, SourceKind};
use crate::error::{Error, Result};
use crate::notify;
use crate::oneshot;
use crate::output::OutputDir;
use crate::pipeline::{self, Gathered};
use crate::render::Renderer;
use crate::snapshot;
use crate::store::{Event, Store};
use crate::view::Blocker;

/// `--now`, or the clock.
pub fn parse_now(now: Option<&str>) -> Result<Timestamp> {
    match now {
        None => Ok(Timestamp::now()),
        Some(s) => s.parse().map_err(|e| {
            Error::Usage(format!(
                "invalid `--now` value `{s}`: {e}\nhint: use RFC 3339 with an offset, e.g. `2024-05-14T12:00:00Z`"
            ))
        }),
    }
}

pub fn load_config(arg: &ConfigArg) -> Result<Config> {
    Config::load(&config::locate(arg.config.as_deref()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    started(tokio::runtime::Builder::new_multi_thread().worker_threads(2))
}

fn started(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))
}

/// The runtime of `render`'s one-shot path: one thread. Its work is three
/// requests and, beside them, a stat of each file; the parsing a
/// changed page needs runs on blocking threads too, so worker threads
/// would only cost their start.
fn oneshot_runtime() -> Result<tokio::runtime::Runtime> {
    started(&mut tokio::runtime::Builder::new_current_thread())
}

/// Snapshots from `--snapshot FILE`, or a fetch falling back to the last
/// good data, with what happened on the way said on stderr. Keeps nothing
/// in `state_dir`: `render` does that itself, and only when it writes.
fn gather(
    config: &Config,
    clusters: &[&config::ClusterConfig],
    file: Option<&Path>,
    now: Timestamp,
) -> Result<pipeline::Gather> {
    let gathered = match file {
        Some(path) => pipeline::Gather {
            data: pipeline::from_file(config, path)?,
            store: Store::new(&config.settings.state_dir),
            events: Vec::new(),
        },
        None => runtime()?.block_on(pipeline::gather(config, clusters, now, false))?,
    };
    say_events(&gathered.events);
    Ok(gathered)
}

/// Says on stderr what the snapshot store did: skipped items and fallbacks
/// are warnings; a source without data is said where it matters (the
/// cluster that reads it fails).
fn say_events(events: &[Event]) {
    for e in events {
        match e {
            Event::NoData { .. } => {}
            _ => eprintln!("warning: {e}"),
        }
    }
}

/// The sources of `clusters` whose fetch failed in a way retrying cannot
/// mend (a rejected key, a page that is gone), rendered from their last
/// good snapshot: an error, so that a build step goes red.
fn permanent_failures(data: &Gathered, clusters: &[&config::ClusterConfig]) -> Option<Error> {
    let names: std::collections::BTreeSet<&str> =
        clusters.iter().flat_map(|c| c.sources()).collect();
    let failed: Vec<String> = data
        .sources
        .iter()
        .filter(|(name, _)| names.contains(name.as_str()))
        .filter_map(|(name, d)| {
            d.fetch_error
                .as_ref()
                .filter(|f| f.is_permanent())
                .map(|f| format!("source `{name}`: {}: {f}", f.note))
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(Error::Runtime(format!(
        "{}\n  the files were rendered from the last good snapshot, but retrying will not mend this\n\
         hint: check the source's `api_key`, `page_id` or `url` in the configuration",
        failed.join("\n")
    )))
}

/// A `--snapshot` file read on a second thread while the configuration
/// loads: its digest comes first, for the stamp; the thread parses it as
/// soon as the stamp cannot hold (before the files are looked at), and not
/// when it holds. When no stamp in the `state_dir` the configuration's
/// `[settings]` names is of this file, it cannot hold: the parse then
/// starts at once, without waiting for the rest of the configuration.
struct SnapshotReader {
    digests: std::sync::mpsc::Receiver<std::collections::BTreeMap<String, String>>,
    state_dir: Option<std::sync::mpsc::Sender<PathBuf>>,
    go: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<Option<snapshot::Snapshots>>>>,
}

impl SnapshotReader {
    fn start(path: &Path) -> Self {
        let (digest_to, digests) = std::sync::mpsc::channel();
        let (state_dir, state_dir_from) = std::sync::mpsc::channel::<PathBuf>();
        let (go, go_from) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            let text =
                std::fs::read_to_string(&path).map_err(Error::io("cannot read snapshot", &path))?;
            let digest = oneshot::snapshot_digest(text.as_bytes());
            let now = state_dir_from
                .recv()
                .is_ok_and(|dir| !oneshot::Stamp::may_hold_in(&dir, &digest));
            let _ = digest_to.send(digest);
            if !now && go_from.recv().is_err() {
                // Nothing to plan: the stamp held.
                return Ok(None);
            }
            snapshot::parse(&text)
                .map(Some)
                .map_err(|e| Error::Runtime(format!("invalid snapshot `{}`: {e}", path.display())))
        });
        Self {
            digests,
            state_dir: Some(state_dir),
            go: Some(go),
            thread: Some(thread),
        }
    }

    /// Where the stamp would be, guessed from the configuration's text
    /// (see [`oneshot::state_dir_named`]); without it, the thread waits
    /// for the whole check. Told once: the sender goes either way, so the
    /// thread never waits for a directory that will not come.
    fn stamp_in(&mut self, state_dir: Option<PathBuf>) {
        let to = self.state_dir.take();
        if let (Some(to), Some(dir)) = (to, state_dir) {
            let _ = to.send(dir);
        }
    }

    /// The file's digest, or why it cannot be read.
    fn digests(&mut self) -> Result<std::collections::BTreeMap<String, String>> {
        match self.digests.recv() {
            Ok(digests) => Ok(digests),
            Err(_) => Err(self
                .finish()
                .err()
                .unwrap_or_else(|| Error::Runtime("the snapshot could not be read".to_owned()))),
        }
    }

    /// Lets the thread parse the file.
    fn go(&mut self) {
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
    }

    /// The file's snapshots.
    fn parsed(mut self) -> Result<snapshot::Snapshots> {
        self.go();
        self.finish()?
            .ok_or_else(|| Error::Runtime("the snapshot could not be read".to_owned()))
    }

    fn finish(&mut self) -> Result<Option<snapshot::Snapshots>> {
        let thread = self
            .thread
            .take()
            .ok_or_else(|| Error::Runtime("the snapshot could not be read".to_owned()))?;
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

pub fn render(args: &RenderArgs) -> Result<u8> {
    let mut reader = args.snapshot.as_deref().map(SnapshotReader::start);
    let path = config::locate(args.config.config.as_deref());
    let text = Config::read(&path)?;
    if let Some(reader) = &mut reader {
        reader.stamp_in(oneshot::state_dir_named(&path, &text));
    }
    // The requests the last render of these very bytes made go out before
    // they are read (see `oneshot::Plan`).
    let found = oneshot::eligible_args(args).then(|| oneshot::Plan::find(&path, &text));
    let early = match found.flatten() {
        Some(plan) => {
            let rt = oneshot_runtime()?;
            let early = plan.send(&rt);
            Some((rt, early))
        }
        None => None,
    };
    let config = Config::parse(&text, &path)?;
    let now = parse_now(args.now.as_deref())?;
    let clusters = pipeline::select_clusters(&config, &args.clusters)?;
    let out = match &args.out {
        Some(out) => {
            let absolute = std::path::absolute(out).unwrap_or_else(|_| out.clone());
            config::check_output_dir(&absolute, "`--out`").map_err(Error::Usage)?;
            out.clone()
        }
        None => config.settings.output_dir.clone(),
    };
    // What a killed run left half-written in `state_dir` goes with the next
    // run, however it ends (`--check` writes nothing).
    if !args.check {
        crate::output::remove_dead_temps_in(&config.settings.state_dir);
    }
    // Nothing changed since the last render: stop here (see `oneshot`).
    let mut quick = None;
    let renderer;
    // How the last render left the files, read on a second thread while
    // the data is parsed, once it is clear that this render plans.
    let known_files = || {
        let (state_dir, out) = (config.settings.state_dir.clone(), out.clone());
        std::thread::spawn(move || oneshot::known_files(&state_dir, &out))
    };
    let known;
    let gathered = if oneshot::eligible(&config, args) {
        let state_dir = &config.settings.state_dir;
        let names: Vec<String> = clusters
            .iter()
            .flat_map(|c| c.sources())
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let planned = oneshot::Plan::of(&config, &text, &names);
        let (rt, early) = match early {
            Some((rt, early)) => (rt, early.take(planned.as_ref())),
            None => (oneshot_runtime()?, None),
        };
        let (pending, new_plan) = match early {
            Some(pending) => (pending, None),
            None => (oneshot::send_for(&rt, &config, &names, now)?, planned),
        };
        // The stamp is read and the files are looked at (a stat each)
        // while upstream prepares its answers.
        let (answers, (inputs, stamp)) = rt.block_on(async {
            tokio::join!(pending.answers(), oneshot::check(&config, &text, &out))
        });
        // Kept for the next render, whatever this one finds: the plan is
        // the configuration's, not the answers'.
        if let Some(plan) = new_plan {
            let _ = plan.save();
        }
        let answers = answers?;
        let digests = answers.digests();
        if let (Some(d), Some(stamp)) = (&digests, &stamp) {
            if stamp.holds(&inputs, d, now) {
                answers.confirm(state_dir, now);
                // An idle blocking thread (a name resolved) is left to the
                // process's exit, not woken and waited for.
                rt.shutdown_background();
                return Ok(0);
            }
        }
        oneshot::Stamp::forget(state_dir);
        known = known_files();
        renderer = Renderer::new(config.settings.templates_dir.as_deref())?;
        let (gathered, keep) = rt.block_on(answers.gather(&config, now))?;
        say_events(&gathered.events);
        quick = Some((inputs, digests, keep, gathered.events.is_empty()));
        gathered
    } else if let Some((path, mut reader)) = reader
        .take_if(|_| oneshot::snapshot_eligible(&config, args))
        .and_then(|reader| Some((args.snapshot.as_deref()?, reader)))
    {
        // The same shortcut, the file's bytes being the one answer.
        let state_dir = &config.settings.state_dir;
        let digests = reader.digests()?;
        let inputs = oneshot::fingerprint(&config, &text, &out);
        let stamp = oneshot::Stamp::load_holding(state_dir, &inputs, &digests, now);
        if stamp.is_none() {
            // The files need not be looked at: the parse can start.
            reader.go();
        }
        if stamp.is_some_and(|s| s.files_hold(&out)) {
            return Ok(0);
        }
        oneshot::Stamp::forget(state_dir);
        known = known_files();
        renderer = Renderer::new(config.settings.templates_dir.as_deref())?;
        quick = Some((
            inputs,
            Some(digests),
            std::collections::BTreeMap::new(),
            true,
        ));
        pipeline::Gather {
            data: pipeline::from_snapshots(&config, reader.parsed()?, path),
            store: Store::new(state_dir),
            events: Vec::new(),
        }
    } else {
        // Requests sent early for a run that turns out unable to take the
        // shortcut (a template that now prints the clock) are cancelled:
        // it fetches as it always does.
        drop(early);
        known = known_files();
        renderer = Renderer::new(config.settings.templates_dir.as_deref())?;
        match (reader, args.snapshot.as_deref()) {
            (Some(reader), Some(path)) => pipeline::Gather {
                data: pipeline::from_snapshots(&config, reader.parsed()?, path),
                store: Store::new(&config.settings.state_dir),
                events: Vec::new(),
            },
            _ => gather(&config, &clusters, None, now)?,
        }
    };
    let pipeline::Gather {
        data, mut store, ..
    } = gathered;
    // New snapshots are kept in `state_dir` on a second thread while the
    // files are planned and written: each takes milliseconds.
    let keep_state = !args.check && args.snapshot.is_none();
    let state_dir = &config.settings.state_dir;
    let known = known.join().unwrap_or_default();
    let (done, mut warnings) = std::thread::scope(|scope| {
        let kept = keep_state.then(|| scope.spawn(|| store.persist()));
        let dir = if args.check {
            OutputDir::dry_run(&out)
        } else {
            OutputDir::open(&out)
        };
        let done = match dir {
            Ok(dir) => {
                // The views are read again only for notifications.
                let views = keep_state && !config.notify.is_empty();
                pipeline::plan_and_write(
                    &config, &renderer, &clusters, &data, &dir, now, known, views,
                )
            }
            Err(e) => pipeline::Rendered {
                plan: pipeline::plan(&config, &renderer, &clusters, &data, now),
                outcome: Err(e),
                left: Vec::new(),
                dirs: Vec::new(),
            },
        };
        let mut warnings: Vec<String> = Vec::new();
        if keep_state {
            warnings.extend(pipeline::keep_known_ids(&config, &data, &done.plan));
        }
        // The calendars' memory follows what was written, with
        // `--snapshot` too: it is what subscribers last saw.
        if !args.check && done.outcome.is_ok() {
            warnings.extend(pipeline::keep_calendar(&config, &data, &done.plan));
        }
        if let Some(kept) = kept {
            let events = kept.join().unwrap_or_default();
            warnings.splice(0..0, events.iter().map(ToString::to_string));
        }
        (done, warnings)
    });
    let pipeline::Rendered {
        mut plan,
        outcome,
        mut left,
        dirs,
    } = done;
    left.extend(dirs);

    let changes = outcome?;
    // The stamp and the table of files are made and kept at once.
    std::thread::scope(|scope| {
        if !args.check {
            scope.spawn(|| oneshot::keep_files(state_dir, &out, &left));
        }
        if let Some((inputs, Some(digests), keep, true)) = quick {
            if warnings.is_empty() && plan.warnings.is_empty() && plan.errors.is_empty() {
                keep_stamp(&config, &out, inputs, digests, keep, &data, &left, now);
            }
        }
    });
    if keep_state && !config.notify.is_empty() {
        notify_after_render(&config, &renderer, &plan);
    }
    let mut stdout = std::io::stdout().lock();
    for c in &changes {
        let line = if args.check {
            c.planned()
        } else {
            c.to_string()
        };
        let _ = writeln!(stdout, "{line}");
    }
    warnings.extend(plan.warnings.iter().cloned());
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let mut errors = std::mem::take(&mut plan.errors);
    errors.extend(permanent_failures(&data, &clusters));
    // The process ends here: the memory of the data, the plan, the files,
    // the templates and the configuration goes back with it at once, not
    // one allocation at a time (milliseconds for a large site). None of
    // them holds a file or a lock.
    std::mem::forget((data, plan, left, renderer, config));
    finish(errors)?;
    Ok(u8::from(args.check && !changes.is_empty()))
}

/// After a complete render without a warning: the validators of the
/// sources fetched anew, then the stamp that lets the next run stop early
/// (see `oneshot`). What cannot be kept only costs the next run that.
#[allow(clippy::too_many_arguments)]
fn keep_stamp(
    config: &Config,
    out: &Path,
    inputs: String,
    digests: std::collections::BTreeMap<String, String>,
    keep: std::collections::BTreeMap<String, crate::source::conditional::Validators>,
    data: &Gathered,
    left: &[pipeline::LeftFile],
    now: Timestamp,
) {
    let state_dir = &config.settings.state_dir;
    for (name, validators) in keep {
        let Some(source) = data.sources.get(&name) else {
            return;
        };
        let at = source.snapshot.fetched_at;
        if oneshot::keep_validators(state_dir, &name, validators, at, now).is_err() {
            return;
        }
    }
    let names: Vec<String> = digests
        .keys()
        .filter(|k| *k != oneshot::SNAPSHOT_ANSWER)
        .cloned()
        .collect();
    oneshot::confirm(state_dir, &names, now);
    let stamp = oneshot::Stamp::of_render(config, inputs, digests, data, left, out, now);
    let _ = stamp.save(state_dir);
}

/// Queues the notifications of what was just rendered (compared with the
/// views kept in `state_dir`), then tries once, within one delivery's
/// timeout, to send what the outbox holds. What is not sent stays in the
/// outbox for the next run (or `serve`), said on stderr.
fn notify_after_render(config: &Config, renderer: &Renderer, plan: &pipeline::Plan) {
    let notifier = notify::Notifier::open(config, None);
    let views: Vec<&crate::view::ClusterView> = plan.clusters.values().map(|p| &p.view).collect();
    if let Err(e) = notifier.enqueue(config, &views, None) {
        eprintln!("warning: notifications are not queued: {e}");
        return;
    }
    let until = std::time::Instant::now() + notify::attempt_timeout(config);
    match runtime() {
        Ok(rt) => {
            rt.block_on(notifier.deliver(config, renderer, None, true, Some(until)));
        }
        Err(e) => eprintln!("warning: notifications are not sent: {e}"),
    }
    let (left, _) = notifier.backlog();
    if left > 0 {
        eprintln!(
            "warning: {left} notification(s) not delivered yet; they stay in the outbox in `{}` for the next run",
            notifier.state_dir().display()
        );
    }
}

pub fn notify(cmd: &NotifyCommand) -> Result<u8> {
    match cmd {
        NotifyCommand::Test { config, route } => {
            let config = load_config(config)?;
            let renderer = Renderer::new(config.settings.templates_dir.as_deref())?;
            let answer = runtime()?.block_on(notify::send_test(&config, &renderer, route))?;
            println!("{answer}");
            Ok(0)
        }
    }
}

/// Reports the errors of clusters that could not be rendered; the first
/// decides the exit code (a mapping error is a configuration error).
fn finish(errors: Vec<Error>) -> Result<()> {
    let mut errors = errors.into_iter();
    let Some(first) = errors.next() else {
        return Ok(());
    };
    for e in errors {
        eprintln!("error: {e}");
    }
    Err(first)
}

pub fn show(args: &ShowArgs) -> Result<u8> {
    let config = load_config(&args.config)?;
    let now = parse_now(args.now.as_deref())?;
    let clusters = pipeline::select_clusters(&config, std::slice::from_ref(&args.cluster))?;
    let renderer = Renderer::new(config.settings.templates_dir.as_deref())?;
    let data = gather(&config, &clusters, args.snapshot.as_deref(), now)?.data;
    let cluster = clusters[0];
    let view = pipeline::cluster_view(&config, cluster, &data, now)?;
    let text = renderer.render(cluster.template.as_deref().unwrap_or("motd.txt.j2"), &view)?;
    if text.is_empty() {
        eprintln!("nothing concerns `{}` now: its MOTD is empty", cluster.name);
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}

pub fn fetch(args: &FetchArgs) -> Result<u8> {
    let config = load_config(&args.config)?;
    let now = Timestamp::now();
    let names: Vec<String> = config.sources.keys().cloned().collect();
    let fetched = runtime()?.block_on(pipeline::fetch_sources(
        &config,
        &names,
        &pipeline::fetch_options(&config, now),
    ))?;
    let mut snaps = snapshot::Snapshots::new();
    let mut failed = Vec::new();
    for (name, result) in fetched {
        match result {
            Ok((s, skipped)) => {
                for item in skipped {
                    eprintln!("warning: source `{name}`: {item}");
                }
                snaps.insert(name, s);
            }
            Err(e) => failed.push(format!("source `{name}`: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(Error::Runtime(format!(
            "{}\nnothing was saved to `{}`",
            failed.join("\n"),
            args.save.display()
        )));
    }
    snapshot::save(&args.save, &snaps)?;
    for (name, s) in &snaps {
        eprintln!(
            "saved source `{name}`: {} components, {} groups, {} incidents and maintenances",
            s.components.len(),
            s.groups.len(),
            s.incidents.len()
        );
    }
    Ok(0)
}

pub fn gate(args: &GateArgs) -> Result<u8> {
    let config = load_config(&args.config)?;
    let now = parse_now(args.now.as_deref())?;
    let max_age = match &args.max_age {
        Some(s) => config::parse_duration(s)
            .map_err(|e| Error::Usage(format!("invalid `--max-age` value `{s}`: {e}")))?,
        None => config.settings.stale_after,
    };
    let clusters = pipeline::select_clusters(&config, std::slice::from_ref(&args.cluster))?;
    let cluster = clusters[0];
    // A gate only reads: it keeps no snapshot in `state_dir` (a pipeline's
    // check should not change what the next render falls back to). Data it
    // cannot get, from the network or a `--snapshot` file, is "no data" (4),
    // never "blocked" (1), which a pipeline would take for an incident.
    let data = match gather(&config, &clusters, args.snapshot.as_deref(), now) {
        Ok(g) => g.data,
        Err(e @ (Error::Io { .. } | Error::Runtime(_))) => {
            println!("no data for `{}`: {e}", cluster.name);
            return Ok(4);
        }
        Err(e) => return Err(e),
    };
    let several = !cluster.also.is_empty();
    for name in cluster.sources() {
        let Some(source) = data.sources.get(name) else {
            let why = data.missing.get(name).map_or("no data", String::as_str);
            println!("no data for `{}`: {why}", cluster.name);
            return Ok(4);
        };
        let age = now.duration_since(source.snapshot.fetched_at);
        if age > max_age {
            let from = if several {
                format!(" from source `{name}`")
            } else {
                String::new()
            };
            println!(
                "no fresh data for `{}`{from}: the newest is {} old, more than the {} allowed",
                cluster.name,
                crate::view::short_duration(age),
                crate::view::short_duration(max_age)
            );
            return Ok(4);
        }
    }
    let view = pipeline::cluster_view(&config, cluster, &data, now)?;
    let block_on: Vec<Blocker> = args.block_on.iter().map(|&b| b.into()).collect();
    let reasons = view.blocked_by(&block_on);
    if reasons.is_empty() {
        println!("clear: nothing blocks `{}`", cluster.name);
        Ok(0)
    } else {
        for r in &reasons {
            println!("blocked: {r}");
        }
        Ok(1)
    }
}

pub fn mapping(cmd: &MappingCommand) -> Result<u8> {
    match cmd {
        MappingCommand::Init {
            config,
            source,
            url,
            snapshot: file,
        } => {
            let (src, snap, also) = if let Some(url) = url {
                let src = SourceConfig {
                    name: "status".into(),
                    kind: SourceKind::Public { url: url.clone() },
                };
                let endpoint = crate::source::Endpoint::of(&src)?;
                let snap = runtime()?
                    .block_on(crate::source::fetch(
                        &crate::source::client(),
                        &endpoint,
                        &crate::source::FetchOptions::default(),
                    ))
                    .map_err(|e| Error::Runtime(e.to_string()))?;
                (src, snap, None)
            } else {
                let config = load_config(config)?;
                let name = match source {
                    Some(s) => s.clone(),
                    None if config.sources.len() == 1 => {
                        config.sources.keys().next().cloned().unwrap_or_default()
                    }
                    None => {
                        return Err(Error::Usage(format!(
                            "`{}` has several sources\nhint: pick one with `--source NAME`",
                            config.path.display()
                        )))
                    }
                };
                let Some(src) = config.sources.get(&name).cloned() else {
                    return Err(Error::Usage(format!(
                        "no source `{name}` in `{}`",
                        config.path.display()
                    )));
                };
                let snap = if let Some(path) = file {
                    pipeline::from_file(&config, path)?
                        .sources
                        .remove(&name)
                        .map(|d| std::sync::Arc::unwrap_or_clone(d.snapshot))
                        .ok_or_else(|| {
                            Error::Runtime(format!(
                                "snapshot `{}` holds no source `{name}`",
                                path.display()
                            ))
                        })?
                } else if let SourceKind::Probes(probes) = &src.kind {
                    // What is mapped are the configured probes and their
                    // groups: no need for a probe to have run.
                    crate::source::probes::configured(&name, probes, Timestamp::now())
                        .ok_or_else(|| Error::Runtime(format!("source `{name}` has no snapshot")))?
                } else {
                    let fetched = runtime()?.block_on(pipeline::fetch_sources(
                        &config,
                        std::slice::from_ref(&name),
                        &pipeline::fetch_options(&config, Timestamp::now()),
                    ))?;
                    let (snap, skipped) = fetched
                        .into_values()
                        .next()
                        .unwrap_or_else(|| Err(format!("source `{name}` was not fetched").into()))
                        .map_err(|e| Error::Runtime(format!("source `{name}`: {e}")))?;
                    for item in skipped {
                        eprintln!("warning: source `{name}`: {item}");
                    }
                    snap
                };
                // A source the clusters should read besides their own: the
                // tables to add, not a second configuration.
                let also = !config.clusters.is_empty()
                    && !config.clusters.values().any(|c| c.source == name);
                (src, snap, also.then_some(config))
            };
            match also {
                Some(config) => print!("{}", crate::mapping::also_skeleton(&snap, &src, &config)),
                None => print!("{}", crate::mapping::skeleton(&snap, &src)),
            }
            Ok(0)
        }
        MappingCommand::Check {
            config,
            snapshot: file,
        } => {
            let config = load_config(config)?;
            let clusters: Vec<_> = config.clusters.values().collect();
            let data = gather(&config, &clusters, file.as_deref(), Timestamp::now())?.data;
            let snaps = data
                .sources
                .into_iter()
                .map(|(k, v)| (k, std::sync::Arc::unwrap_or_clone(v.snapshot)))
                .collect();
            let report = crate::mapping::check(&config, &snaps);
            print!("{report}");
            for (name, why) in &data.missing {
                eprintln!("error: source `{name}`: {why}");
            }
            if !report.errors.is_empty() {
                return Err(Error::Config(format!(
                    "{} mapping error(s) in `{}`",
                    report.errors.len(),
                    config.path.display()
                )));
            }
            Ok(u8::from(!data.missing.is_empty()))
        }
    }
}

pub fn demo(args: &DemoArgs) -> Result<u8> {
    let (dir, config) = crate::demo::prepare(args.out.as_deref())?;
    let now = crate::demo::now();
    let renderer = Renderer::new(None)?;
    let clusters: Vec<_> = config.clusters.values().collect();
    let data = crate::demo::data(&config)?;
    let plan = pipeline::plan(&config, &renderer, &clusters, &data, now);
    finish(
        plan.errors
            .iter()
            .map(|e| Error::Runtime(e.to_string()))
            .collect(),
    )?;
    let changes = pipeline::apply(&plan, &dir, now)?;

    let shown = crate::demo::SHOWN_CLUSTER;
    let motd = std::fs::read_to_string(dir.join(shown).join("motd"))
        .map_err(Error::io("cannot read", dir.join(shown)))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "statusmotd demo: a Statuspage page with {} clusters, rendered as of {now}",
        clusters.len()
    );
    let _ = writeln!(
        out,
        "\n--- {}/motd {}",
        shown,
        "-".repeat(60usize.saturating_sub(shown.len()))
    );
    let _ = write!(out, "{motd}");
    let _ = writeln!(out, "{}", "-".repeat(70));
    let _ = writeln!(out, "\nFiles written under {}:", dir.display());
    for c in &changes {
        let _ = writeln!(out, "  {c}");
    }
    if changes.is_empty() {
        let _ = writeln!(out, "  (none: every file already had these bytes)");
    }
    let _ = writeln!(
        out,
        "\nMaintenance in progress: `cat {}`. Every cluster: `{}`.\n\
         Run `statusmotd demo --out {}` again and nothing is rewritten: same bytes, same mtimes.",
        dir.join("cirrus").join("motd").display(),
        dir.join("index.json").display(),
        dir.display()
    );
    Ok(0)
}

pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "statusmotd", &mut std::io::stdout());
    Ok(0)
}

pub fn man() -> Result<u8> {
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .map_err(|e| Error::Runtime(format!("cannot write the manual page: {e}")))?;
    Ok(0)
}

/// The JSON Schema of a snapshot file, as shipped in `schema/`.
pub fn schema() -> Result<u8> {
    let _ = std::io::stdout()
        .lock()
        .write_all(crate::source::file::SCHEMA.as_bytes());
    Ok(0)
}

/// `statusmotd probe`: runs every (or the named) probe of every `probes`
/// source once, counts the results into the persisted state, and prints one
/// line per probe. Exit 0 when every probe run counts as operational, 1 when
/// any does not.
pub fn probe(args: &ProbeArgs) -> Result<u8> {
    use crate::source::probes;
    let config = load_config(&args.config)?;
    let sources: Vec<&config::ProbesConfig> = config
        .sources
        .values()
        .filter_map(|s| match &s.kind {
            SourceKind::Probes(p) => Some(&**p),
            _ => None,
        })
        .collect();
    if sources.is_empty() {
        return Err(Error::Config(format!(
            "`{}` defines no source of kind `probes`\n\
             hint: add one, e.g. `[sources.checks]` with `kind = \"probes\"` and a \
             `[[sources.checks.probe]]` table (see README, \"Probes\")",
            config.path.display()
        )));
    }
    let all: std::collections::BTreeSet<&str> = sources
        .iter()
        .flat_map(|s| s.probes.iter().map(|p| p.name.as_str()))
        .collect();
    if let Some(unknown) = args.names.iter().find(|n| !all.contains(n.as_str())) {
        return Err(Error::Usage(format!(
            "no probe is named `{unknown}`\nhint: the probes are {}",
            all.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let only: Option<std::collections::BTreeSet<String>> =
        (!args.names.is_empty()).then(|| args.names.iter().cloned().collect());
    let secret_env = std::sync::Arc::new(config.secret_env_vars());
    let ran = runtime()?.block_on(async {
        let clients = probes::check::Clients::new();
        let mut ran = Vec::new();
        for source in &sources {
            ran.extend(probes::run(source, only.as_ref(), &clients, &secret_env).await?);
        }
        // Pushes queued by this run's transitions, and any a run before
        // could not send.
        let client = crate::source::client();
        let mut pushed = Vec::new();
        for (name, source) in config.sources.iter().filter_map(|(n, s)| match &s.kind {
            SourceKind::Probes(p) => Some((n, p)),
            _ => None,
        }) {
            // One source's state file that cannot be read or locked costs
            // that source's pushes, not the others' or the report.
            match probes::push::deliver(name, source, &config, &client).await {
                Ok(p) => pushed.extend(p),
                Err(e) => tracing::error!("pushes of source `{name}`: {e}"),
            }
        }
        Ok::<_, Error>((ran, pushed))
    })?;
    let (ran, pushed) = ran;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(probes::report(&ran).as_bytes());
    for p in &pushed {
        let _ = writeln!(
            out,
            "{}: statuspage `{}`: {}: {}",
            p.probe,
            p.source,
            p.result.label(),
            p.detail
        );
    }
    let down = ran
        .iter()
        .any(|r| r.state.status != crate::model::ComponentStatus::Operational);
    Ok(u8::from(down))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` on another thread, failed if it takes longer than 30 s: a reader
    /// waiting for a message that never comes would hang the test.
    fn within_30s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(f());
        });
        result
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the snapshot reader hung")
    }

    #[allow(clippy::disallowed_methods)] // a scratch snapshot and state
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("snapshot.json");
        std::fs::write(&file, snapshot::to_json(&snapshot::Snapshots::new())).expect("write");
        std::fs::create_dir(dir.path().join("state")).expect("state dir");
        (dir, file)
    }

    #[test]
    fn a_snapshot_with_no_stamp_of_it_is_parsed_without_waiting_for_the_check() {
        let (dir, file) = scratch();
        let state = dir.path().join("state");
        let parsed = within_30s(move || {
            let mut reader = SnapshotReader::start(&file);
            reader.stamp_in(Some(state));
            reader.digests().expect("digest");
            // Nothing lets it go: it parsed on its own.
            reader.finish()
        });
        assert!(matches!(parsed, Ok(Some(_))), "{parsed:?}");
    }

    #[test]
    fn a_snapshot_whose_stamp_is_kept_waits_and_is_not_parsed_when_it_holds() {
        let (dir, file) = scratch();
        let state = dir.path().join("state");
        let bytes = std::fs::read(&file).expect("read");
        oneshot::Stamp::of_answers(oneshot::snapshot_digest(&bytes))
            .save(&state)
            .expect("save");
        let parsed = within_30s(move || {
            let mut reader = SnapshotReader::start(&file);
            reader.stamp_in(Some(state));
            reader.digests().expect("digest");
            // The stamp held: the reader is told nothing more.
            drop(reader.go.take());
            reader.finish()
        });
        assert!(matches!(parsed, Ok(None)), "{parsed:?}");
    }

    #[test]
    fn a_snapshot_reader_told_no_state_dir_gives_its_digest_and_parses_when_let() {
        let (_dir, file) = scratch();
        let parsed = within_30s(move || {
            let mut reader = SnapshotReader::start(&file);
            reader.stamp_in(None);
            reader.digests().expect("digest");
            reader.parsed()
        });
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
