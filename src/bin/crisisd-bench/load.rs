//! A minimal HTTP/1.1 keep-alive load generator, in the manner of wrk: one
//! request at a time per connection, the response read by Content-Length.
//! Written by hand rather than with an HTTP client library because the
//! generator shares the machine's two cores with the daemon: the less it
//! costs per request, the more the figure says about the daemon.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    /// Answers with an expected status (200 and 304 for the banner).
    pub ok: u64,
    /// Any other status, and connections that failed.
    pub errors: u64,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// `GET path` as the load generator sends it.
pub fn get_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nUser-Agent: crisisd-bench\r\n\r\n"
    )
    .into_bytes()
}

/// `POST path` with `headers` (each "Name: value") and a JSON `body`.
pub fn post_request(addr: SocketAddr, path: &str, headers: &[String], body: &str) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: crisisd-bench\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

/// Runs `connections` connections of `GET path` for `duration`; 200 and
/// 304 count.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let timer = tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
        }
    });
    let requests = vec![get_request(addr, path)];
    let result = run_until(addr, requests, connections, &stop, &[200, 304]).await;
    timer.abort();
    let result = result?;
    if result.ok == 0 {
        bail!(
            "no GET {path} succeeded ({} errors) in {duration:?}",
            result.errors
        );
    }
    Ok(result)
}

/// Runs `connections` connections until `stop`, each sending the
/// `requests` in turn (connection k starts at request k); answers whose
/// status is in `expected` count as ok.
pub async fn run_until(
    addr: SocketAddr,
    requests: Vec<Vec<u8>>,
    connections: usize,
    stop: &Arc<AtomicBool>,
    expected: &'static [u16],
) -> anyhow::Result<LoadResult> {
    if requests.is_empty() {
        bail!("the load generator needs a request to send");
    }
    let requests: Arc<[Vec<u8>]> = requests.into();
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..connections {
        let requests = Arc::clone(&requests);
        let (ok, errors, stop) = (Arc::clone(&ok), Arc::clone(&errors), Arc::clone(stop));
        tasks.spawn(async move {
            let mut next = k;
            while !stop.load(Ordering::Relaxed) {
                let result = connection(addr, &requests, &mut next, &stop, expected, &ok).await;
                if let Err(err) = result {
                    errors.fetch_add(1, Ordering::Relaxed);
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if errors.load(Ordering::Relaxed) == 1 {
                        eprintln!("  load: {err:#}");
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(LoadResult {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// One keep-alive connection, until `stop`. Answers outside `expected`
/// count as errors, through the returned error.
async fn connection(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    next: &mut usize,
    stop: &AtomicBool,
    expected: &[u16],
    ok: &AtomicU64,
) -> anyhow::Result<()> {
    let mut conn = Connection::open(addr).await?;
    while !stop.load(Ordering::Relaxed) {
        let request = &requests[*next % requests.len()];
        *next += 1;
        let (status, _) = conn.exchange(request).await?;
        if expected.contains(&status) {
            ok.fetch_add(1, Ordering::Relaxed);
        } else {
            bail!("the daemon answered {status}");
        }
    }
    Ok(())
}

/// One keep-alive HTTP/1.1 connection, one request at a time.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    head_end: memmem::Finder<'static>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.context("connecting")?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            head_end: memmem::Finder::new(b"\r\n\r\n"),
        })
    }

    /// Sends `request` and reads the whole answer: its status and body
    /// length.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, usize)> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let body_start = loop {
            if let Some(at) = self.head_end.find(&self.buf) {
                break at + 4;
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("the daemon closed the connection");
            }
        };
        let (status, length) = parse_head(&self.buf[..body_start])?;
        while self.buf.len() < body_start + length {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("the daemon closed the connection mid-body");
            }
        }
        Ok((status, length))
    }
}

/// The status code and Content-Length (0 when absent, as for 304).
fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let text = std::str::from_utf8(head).context("a response head that is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("a response without a status line")?;
    let mut length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().context("a bad Content-Length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by the load generator");
        }
    }
    Ok((status, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_length() {
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n";
        assert_eq!(parse_head(head).expect("parses"), (200, 42));
        let head = b"HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n";
        assert_eq!(parse_head(head).expect("parses"), (304, 0));
    }
}
