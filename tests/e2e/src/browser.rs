//! Headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol, for tests
//! that check a web page as a user sees it: load it, type into a field, click a button, read
//! what the page then shows, save a screenshot.
//!
//! The browser runs with a throwaway profile, its background services off and every host name
//! unresolvable (`--host-resolver-rules`), so it reaches nothing but 127.0.0.1. Commands go over
//! one WebSocket to the page's target and wait for their answer; events in between are skipped.
//! Input is real input: text is inserted as the keyboard would (`Input.insertText` into the
//! focused field) and clicks are mouse events at the element's centre, so the page's own
//! handlers run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long one protocol command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Debian's package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless browser with one page, ended on drop.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .field("profile", &self.profile.path())
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Start Chromium (a `width`×`height` window) and connect to its first page.
    pub fn launch(width: u32, height: u32) -> Result<Browser> {
        ensure!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing (apt install chromium)"
        );
        let profile = tempfile::Builder::new()
            .prefix("maestro-e2e-chromium-")
            .tempdir()?;
        let log = std::fs::File::create(profile.path().join("chromium.log"))?;
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--disable-breakpad",
                "--no-pings",
                "--force-device-scale-factor=1",
                // No name resolves and no address but loopback's is mapped through.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Its own process group: the zygote, renderer and GPU processes end with it.
            .process_group(0)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting chromium")?;
        let page = match connect_page(profile.path()) {
            Ok(page) => page,
            Err(err) => {
                // Dropping a Child does not end the process.
                end_group(&mut child);
                return Err(err);
            }
        };
        let mut browser = Browser {
            page,
            child,
            profile,
            next_id: 0,
        };
        browser.call("Page.enable", json!({}))?;
        browser.call("Runtime.enable", json!({}))?;
        Ok(browser)
    }

    /// What Chromium wrote to its output (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    /// Send one command and wait for its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.page
            .send(Message::text(request.to_string()))
            .with_context(|| format!("sending {method}"))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            ensure!(
                Instant::now() < deadline,
                "{method}: no answer in {COMMAND_TIMEOUT:?}"
            );
            let message = self
                .page
                .read()
                .with_context(|| format!("waiting for the answer to {method}"))?;
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str())?;
            if answer["id"] != id {
                continue; // an event
            }
            if let Some(error) = answer.get("error") {
                bail!("{method} failed: {error}");
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Load `url` and wait until the document and its resources have loaded.
    pub fn navigate(&mut self, url: &str) -> Result<()> {
        let result = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(error) = result["errorText"].as_str() {
            bail!("loading {url}: {error}");
        }
        self.wait_for(
            &format!(
                "document.readyState === 'complete' && location.href === {}",
                json!(url)
            ),
            COMMAND_TIMEOUT,
        )?;
        Ok(())
    }

    /// The value of a JavaScript expression in the page (promises are awaited).
    pub fn evaluate(&mut self, expression: &str) -> Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("{expression}: {}", exception["exception"]["description"]);
        }
        Ok(result["result"]["value"].clone())
    }

    /// Evaluate `expression` until it gives something truthy (a non-empty string, true, a
    /// number other than 0, an object), and return that; an error after `limit`. An expression
    /// that throws (the element is not there yet) counts as not yet.
    pub fn wait_for(&mut self, expression: &str, limit: Duration) -> Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let value = match self.evaluate(expression) {
                Ok(value) => value,
                Err(err) if Instant::now() >= deadline => return Err(err),
                Err(_) => Value::Null,
            };
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                bail!("{expression} was still {value} after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Focus the element `selector` names and type `text` into it.
    pub fn type_into(&mut self, selector: &str, text: &str) -> Result<()> {
        let found = self.evaluate(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.focus(); return document.activeElement === e; }})()",
            json!(selector)
        ))?;
        ensure!(found == true, "no focusable element {selector}");
        self.call("Input.insertText", json!({"text": text}))?;
        Ok(())
    }

    /// Click the centre of the element `selector` names with the left mouse button.
    pub fn click(&mut self, selector: &str) -> Result<()> {
        let centre = self.evaluate(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            json!(selector)
        ))?;
        let (Some(x), Some(y)) = (centre[0].as_f64(), centre[1].as_f64()) else {
            bail!("no element {selector} to click");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Save a PNG screenshot of the page as it is now.
    pub fn screenshot(&mut self, path: &Path) -> Result<PathBuf> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("no screenshot data")?)?;
        ensure!(data.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, data)?;
        Ok(path.to_path_buf())
    }
}

impl Drop for Browser {
    /// Ends the browser and every process it started (its own process group), and waits for
    /// them, so that none writes into the profile while it is removed.
    fn drop(&mut self) {
        let _ = self.page.close(None);
        end_group(&mut self.child);
    }
}

/// SIGKILL the process group `child` leads, reap `child`, and wait (up to 10 s) until no member
/// of the group is left.
fn end_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |name: &str| {
        Command::new("kill")
            .args([name, "--", &group])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    signal("-KILL");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while signal("-0") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The WebSocket of the browser's first page: the port comes from `DevToolsActivePort` in the
/// profile (the browser picked it), the page from the `/json/list` endpoint.
fn connect_page(profile: &Path) -> Result<WebSocket<MaybeTlsStream<TcpStream>>> {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Some(port) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u16>().ok())
        {
            break port;
        }
        ensure!(
            Instant::now() < deadline,
            "chromium did not open its DevTools port:\n{}",
            std::fs::read_to_string(profile.join("chromium.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let targets: Value = serde_json::from_str(&http_get(port, "/json/list")?)?;
    let url = targets
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .with_context(|| format!("no page among the browser's targets: {targets}"))?
        .to_string();
    let (socket, _) = tungstenite::connect(&url).with_context(|| format!("connecting to {url}"))?;
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    }
    Ok(socket)
}

/// The body of an HTTP/1.1 GET to the browser's DevTools endpoint (which keeps the connection
/// open and answers HTTP/1.0 with nothing: the body ends at its Content-Length).
fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = stream.read(&mut chunk)?;
        ensure!(n > 0, "GET {path}: the connection closed early");
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("no Content-Length")?;
        if body.len() >= length {
            return Ok(body[..length].to_string());
        }
    }
}
