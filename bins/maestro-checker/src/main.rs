//! `maestro-checker`: run as a container's process by the node tests, it asserts from inside
//! what the runtime was asked to set up (limits, mounts, env, hostname, user, capabilities),
//! one `ok`/`FAIL` line per check, exit 0 only if all pass. It also serves HTTP for probe and
//! service tests (`serve`), sleeps (`sleep`) and allocates memory to meet the OOM killer
//! (`hog`). Built statically (see `maestro_e2e::checker`) so it runs in a busybox-only image.
//!
//! ```text
//! maestro-checker CHECK... [-- MODE ARGS...]   checks, then (if all passed) a mode
//! maestro-checker serve [PORT] [options]       HTTP: /healthz /readyz / /exit/N
//! maestro-checker sleep SECS|forever
//! maestro-checker hog BYTES [--hold]           allocate and touch BYTES (64Mi, 1Gi)
//! ```
//! Long-running modes exit with 0 on SIGTERM/SIGINT (`--term-exit N` for another code), or
//! ignore SIGTERM with `--ignore-sigterm` (to test grace periods).

mod cgroup;
mod checks;
mod procfs;
mod serve;

use std::io::Write;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

const MODES: &[&str] = &["serve", "sleep", "hog", "help", "--help", "-h"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(run(&args));
}

fn run(args: &[String]) -> i32 {
    let Some(first) = args.first() else {
        usage();
        return 2;
    };
    if MODES.contains(&first.as_str()) {
        return mode(args);
    }
    let (check_args, then) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], Some(&args[i + 1..])),
        None => (args, None),
    };
    let checks = match checks::parse(check_args) {
        Ok(checks) => checks,
        Err(e) => {
            eprintln!("maestro-checker: {e}");
            usage();
            return 2;
        }
    };
    let cx = checks::Context { root: "/".into() };
    let mut out = std::io::stdout().lock();
    let passed = checks::run_all(&checks, &cx, &mut out);
    let all = passed == checks.len();
    let _ = writeln!(out, "{passed} of {} checks passed", checks.len());
    let _ = out.flush();
    drop(out);
    match then {
        _ if !all => 1,
        Some(rest) if !rest.is_empty() => mode(rest),
        _ => 0,
    }
}

fn mode(args: &[String]) -> i32 {
    let mut rest: Vec<String> = Vec::new();
    let mut ignore_sigterm = false;
    let mut term_exit = 0;
    let mut iter = args[1..].iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--ignore-sigterm" => ignore_sigterm = true,
            "--term-exit" => match iter.next().and_then(|c| c.parse().ok()) {
                Some(code) => term_exit = code,
                None => return bad("--term-exit needs an exit code"),
            },
            _ => rest.push(arg.clone()),
        }
    }
    let name = args[0].as_str();
    if matches!(name, "help" | "--help" | "-h") {
        usage();
        return 0;
    }
    if let Err(e) = handle_signals(ignore_sigterm, term_exit) {
        eprintln!("maestro-checker: signals: {e}");
        return 1;
    }
    match name {
        "serve" => match serve::parse(&rest) {
            Ok(options) => serve::serve(options),
            Err(e) => bad(&e),
        },
        // The first line says signals are handled: a test may send SIGTERM once it sees it.
        "sleep" => match rest.as_slice() {
            [s] if s == "forever" || s == "infinity" => {
                println!("sleeping forever");
                forever()
            }
            [s] => match s.parse::<f64>() {
                Ok(secs) if secs >= 0.0 => {
                    println!("sleeping {secs} s");
                    std::thread::sleep(Duration::from_secs_f64(secs));
                    0
                }
                _ => bad("sleep needs seconds or forever"),
            },
            _ => bad("sleep needs seconds or forever"),
        },
        "hog" => {
            let hold = rest.iter().any(|a| a == "--hold");
            match rest
                .iter()
                .find(|a| *a != "--hold")
                .map(|q| checks::parse_quantity(q))
            {
                Some(Ok(bytes)) => hog(bytes, hold),
                _ => bad("hog needs BYTES"),
            }
        }
        _ => unreachable!("modes are listed in MODES"),
    }
}

fn bad(message: &str) -> i32 {
    eprintln!("maestro-checker: {message}");
    2
}

/// SIGTERM and SIGINT are blocked in every thread and taken by `sigwait` in one: a pid
/// namespace's init ignores signals left at their default action, but blocked signals are
/// still queued, so this works as pid 1 too, without a handler (and without `unsafe`).
fn handle_signals(ignore_sigterm: bool, exit_code: i32) -> nix::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Before any thread exists, so every thread inherits the mask.
    set.thread_block()?;
    if !ignore_sigterm {
        std::thread::spawn(move || {
            if let Ok(signal) = set.wait() {
                println!("received {signal}, exiting with {exit_code}");
                let _ = std::io::stdout().flush();
                std::process::exit(exit_code);
            }
        });
    }
    Ok(())
}

fn forever() -> i32 {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Allocates `bytes` in 1 MiB blocks and writes to every page, so the memory is charged to
/// the cgroup (untouched pages are not); past the limit the OOM killer ends us.
fn hog(bytes: u64, hold: bool) -> i32 {
    const BLOCK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut total: u64 = 0;
    let mut out = std::io::stdout();
    while total < bytes {
        let size = BLOCK.min((bytes - total) as usize);
        let mut block = vec![0u8; size];
        for i in (0..size).step_by(PAGE) {
            block[i] = 1;
        }
        blocks.push(block);
        total += size as u64;
        if total.is_multiple_of(16 * BLOCK as u64) {
            let _ = writeln!(out, "allocated {total} bytes");
            let _ = out.flush();
        }
    }
    let _ = writeln!(out, "hogged {total} bytes");
    let _ = out.flush();
    if hold {
        forever();
    }
    // Keep the memory until here.
    drop(blocks);
    0
}

fn usage() {
    let mut text = String::from(
        "usage: maestro-checker CHECK... [-- MODE ARGS...]\n\
         \x20      maestro-checker serve|sleep|hog ARGS... [--ignore-sigterm] [--term-exit N]\n\n\
         checks (one line each, `ok ...` or `FAIL ...: expected X, got Y`; exit 0 if all pass):\n",
    );
    for (name, _, syntax, meaning) in checks::CHECKS {
        text.push_str(&format!("  {:<34} {meaning}\n", format!("{name} {syntax}")));
    }
    text.push_str(&format!(
        "\nmodes:\n  {}\n  sleep SECS|forever\n  hog BYTES [--hold]   allocate and touch BYTES, \
         then exit 0 (or hold them)\n",
        serve::USAGE
    ));
    eprint!("{text}");
}
