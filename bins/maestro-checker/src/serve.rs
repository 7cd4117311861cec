//! `serve`: a tiny HTTP/1.1 server for probe and service tests. `/healthz` (liveness) and
//! `/readyz` (readiness) answer 200 or 503 as configured; `/` answers the hostname (which pod
//! a service routed to); `/exit/N` answers, then exits with code N. Every request is logged
//! on stdout as `<method> <path> <status>`, so tests can count probes in the container log.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub port: u16,
    /// `/healthz` fails once this long has passed since start.
    pub healthy_for: Option<Duration>,
    /// `/healthz` fails while this file exists (`kubectl exec ... touch` flips it).
    pub fail_file: Option<PathBuf>,
    /// `/readyz` fails until this long has passed since start.
    pub ready_after: Option<Duration>,
    /// `/readyz` fails while this file exists.
    pub unready_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 8080,
            healthy_for: None,
            fail_file: None,
            ready_after: None,
            unready_file: None,
        }
    }
}

pub const USAGE: &str = "serve [PORT] [--healthy-for SECS] [--fail-file PATH] \
                         [--ready-after SECS] [--unready-file PATH]";

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    let secs = |v: Option<&String>| -> Result<Duration, String> {
        v.and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| "expected seconds".to_owned())
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--healthy-for" => options.healthy_for = Some(secs(args.next())?),
            "--ready-after" => options.ready_after = Some(secs(args.next())?),
            "--fail-file" => {
                options.fail_file = Some(args.next().ok_or("--fail-file needs a path")?.into())
            }
            "--unready-file" => {
                options.unready_file =
                    Some(args.next().ok_or("--unready-file needs a path")?.into())
            }
            port => {
                options.port = port
                    .parse()
                    .map_err(|_| format!("unexpected argument {port:?}"))?
            }
        }
    }
    Ok(options)
}

/// The status of a request for `path`, `elapsed` after start.
fn status_for(options: &Options, path: &str, elapsed: Duration) -> (u16, String) {
    let exists = |f: &Option<PathBuf>| f.as_ref().is_some_and(|f| f.exists());
    match path {
        "/healthz" => {
            let expired = options.healthy_for.is_some_and(|d| elapsed >= d);
            if expired || exists(&options.fail_file) {
                (503, "unhealthy\n".into())
            } else {
                (200, "ok\n".into())
            }
        }
        "/readyz" => {
            let early = options.ready_after.is_some_and(|d| elapsed < d);
            if early || exists(&options.unready_file) {
                (503, "not ready\n".into())
            } else {
                (200, "ready\n".into())
            }
        }
        p if p.starts_with("/exit/") => (200, "bye\n".into()),
        "/" | "/hostname" => (200, format!("{}\n", hostname())),
        _ => (404, "not found\n".into()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Serves forever (or until `/exit/N`).
pub fn serve(options: Options) -> i32 {
    let listener = match TcpListener::bind(("0.0.0.0", options.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("maestro-checker: listen on port {}: {e}", options.port);
            return 1;
        }
    };
    println!("serving on port {}", options.port);
    let start = Instant::now();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let options = options.clone();
        // A thread per connection: a probe that never sends its request must not block others.
        std::thread::spawn(move || handle(stream, &options, start));
    }
    0
}

fn handle(stream: TcpStream, options: &Options, start: Instant) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Headers are read and ignored; the request ends at the empty line (no bodies here).
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let (status, body) = status_for(options, path, start.elapsed());
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
    println!("{method} {path} {status}");
    if let Some(code) = path.strip_prefix("/exit/") {
        std::process::exit(code.parse().unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse(&[]).unwrap(), Options::default());
        let o = parse(&args(
            "9000 --healthy-for 1.5 --ready-after 2 --fail-file /tmp/f",
        ))
        .unwrap();
        assert_eq!(o.port, 9000);
        assert_eq!(o.healthy_for, Some(Duration::from_millis(1500)));
        assert_eq!(o.ready_after, Some(Duration::from_secs(2)));
        assert_eq!(o.fail_file, Some(PathBuf::from("/tmp/f")));
        assert!(parse(&args("--healthy-for")).is_err());
        assert!(parse(&args("http")).is_err());
    }

    #[test]
    fn health_and_readiness_follow_time_and_files() {
        let o = parse(&args("--healthy-for 10 --ready-after 2")).unwrap();
        let s = |path: &str, secs: u64| status_for(&o, path, Duration::from_secs(secs)).0;
        assert_eq!((s("/healthz", 0), s("/healthz", 10)), (200, 503));
        assert_eq!((s("/readyz", 1), s("/readyz", 2)), (503, 200));
        assert_eq!((s("/", 0), s("/nope", 0)), (200, 404));

        let flag = std::env::temp_dir().join(format!("checker-fail-{}", std::process::id()));
        let o = Options {
            fail_file: Some(flag.clone()),
            ..Options::default()
        };
        assert_eq!(status_for(&o, "/healthz", Duration::ZERO).0, 200);
        std::fs::write(&flag, "").unwrap();
        assert_eq!(status_for(&o, "/healthz", Duration::ZERO).0, 503);
        std::fs::remove_file(&flag).unwrap();
    }
}
