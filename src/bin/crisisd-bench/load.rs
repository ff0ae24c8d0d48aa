//! A minimal HTTP/1.1 keep-alive load generator for `GET /v1/banner`, in
//! the manner of wrk: one request at a time per connection, the response
//! read by Content-Length. Written by hand rather than with an HTTP client
//! library because the generator shares the machine's two cores with the
//! daemon: the less it costs per request, the more the figure says about
//! the daemon.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    /// 200 and 304 answers.
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

/// Runs `connections` connections against `path` for `duration`.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let request: Arc<[u8]> = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nUser-Agent: crisisd-bench\r\n\r\n"
    )
    .into_bytes()
    .into();
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let request = Arc::clone(&request);
        let ok = Arc::clone(&ok);
        let errors = Arc::clone(&errors);
        tasks.spawn(async move {
            while Instant::now() < until {
                if let Err(err) = connection(addr, &request, until, &ok).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if errors.load(Ordering::Relaxed) == 1 {
                        eprintln!("  banner load: {err:#}");
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let result = LoadResult {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    };
    if result.ok == 0 {
        bail!(
            "no GET {path} succeeded ({} errors) in {duration:?}",
            result.errors
        );
    }
    Ok(result)
}

/// One keep-alive connection, until `until`. Non-200/304 answers count
/// as errors, through the returned error.
async fn connection(
    addr: SocketAddr,
    request: &[u8],
    until: Instant,
    ok: &AtomicU64,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let head_end = memmem::Finder::new(b"\r\n\r\n");
    while Instant::now() < until {
        stream.write_all(request).await?;
        buf.clear();
        let body_start = loop {
            if let Some(at) = head_end.find(&buf) {
                break at + 4;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the daemon closed the connection");
            }
        };
        let (status, length) = parse_head(&buf[..body_start])?;
        while buf.len() < body_start + length {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the daemon closed the connection mid-body");
            }
        }
        if status == 200 || status == 304 {
            ok.fetch_add(1, Ordering::Relaxed);
        } else {
            bail!("GET answered {status}");
        }
    }
    Ok(())
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
