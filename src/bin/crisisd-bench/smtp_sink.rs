//! A fast SMTP sink on loopback: answers 250 to everything, reads DATA up
//! to CRLF.CRLF and counts the message.
//!
//! It must cost the machine as little as possible, because it shares the
//! CPUs with the daemon being measured: large buffered reads, the end of
//! DATA found with a SIMD substring search over the read buffer (no copy,
//! no per-line work), and the header lines only looked at when the
//! scenario wants Message-IDs.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use memchr::memmem;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::sink::SinkStats;

/// Enough to hold many whole messages, so a read rarely splits one.
const READ_BUFFER: usize = 256 * 1024;

/// The sink; dropping it stops the listener and every open connection.
pub struct SmtpSink {
    pub addr: SocketAddr,
    pub stats: Arc<SinkStats>,
    task: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the SMTP sink")?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(SinkStats::new());
        let task = tokio::spawn(serve(listener, Arc::clone(&stats)));
        Ok(Self { addr, stats, task })
    }
}

async fn serve(listener: TcpListener, stats: Arc<SinkStats>) {
    // Connections live in this set, so aborting the accept task (dropping
    // the set) closes them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(session(stream, Arc::clone(&stats)));
                }
                Err(err) => {
                    eprintln!("smtp sink: accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn session(stream: TcpStream, stats: Arc<SinkStats>) {
    if let Err(err) = converse(stream, &stats).await {
        // A daemon killed mid-transaction resets its connections: expected
        // in the crash scenario, so not worth a message.
        if !matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
        ) {
            eprintln!("smtp sink: session failed: {err}");
        }
    }
}

async fn converse(stream: TcpStream, stats: &SinkStats) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, read);
    // Replies to pipelined commands go out together, when nothing more is
    // waiting to be read (as Postfix does).
    let mut write = BufWriter::new(write);
    write.write_all(b"220 crisisd-bench ESMTP\r\n").await?;
    write.flush().await?;
    let mut line = Vec::with_capacity(512);
    let end_of_data = memmem::Finder::new(b"\r\n.\r\n");
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).map(<[u8]>::to_ascii_uppercase);
        let answer: &[u8] = match verb.as_deref() {
            Some(b"EHLO") => {
                b"250-crisisd-bench\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
            }
            Some(b"DATA") => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                write.flush().await?;
                let data = read_data(&mut reader, &end_of_data, stats.recording()).await?;
                stats.add_bytes(data.bytes);
                stats.accept(data.id.as_deref());
                b"250 2.0.0 OK queued\r\n"
            }
            Some(b"QUIT") => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                write.flush().await?;
                return Ok(());
            }
            // HELO, MAIL, RCPT, RSET, NOOP and anything else.
            _ => b"250 2.0.0 OK\r\n",
        };
        write.write_all(answer).await?;
        if reader.buffer().is_empty() {
            write.flush().await?;
        }
    }
}

/// One message read by the sink.
struct Data {
    /// Its Message-ID, when asked for.
    id: Option<Vec<u8>>,
    /// Bytes from after the DATA reply up to and including CRLF.CRLF: what
    /// the `smtp-source` scenario sizes Postfix's generator by.
    bytes: usize,
}

/// Consumes a message up to and including the terminating CRLF.CRLF and
/// returns its Message-ID when `want_id`, and its size.
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    end: &memmem::Finder<'_>,
    want_id: bool,
) -> io::Result<Data> {
    let mut id = None;
    let mut bytes = 0;
    if want_id {
        // Header lines one by one: only a dozen or so, before the body.
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            bytes += line.len();
            if line == b".\r\n" || line == b".\n" {
                return Ok(Data { id, bytes });
            }
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
                id = Some(line[11..].trim_ascii().to_vec());
            }
        }
    }
    // We are at the start of a line: as if "\r\n" had just been read.
    let mut carry = [0u8; 4];
    carry[..2].copy_from_slice(b"\r\n");
    let mut carried = 2;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // The terminator may straddle the previous read and this one.
        let head = buf.len().min(4);
        let mut joined = [0u8; 8];
        joined[..carried].copy_from_slice(&carry[..carried]);
        joined[carried..carried + head].copy_from_slice(&buf[..head]);
        if let Some(at) = end.find(&joined[..carried + head]) {
            let used = at + 5 - carried;
            reader.consume(used);
            return Ok(Data {
                id,
                bytes: bytes + used,
            });
        }
        if let Some(at) = end.find(buf) {
            reader.consume(at + 5);
            return Ok(Data {
                id,
                bytes: bytes + at + 5,
            });
        }
        // Keep the last four bytes seen, for the straddling check.
        let len = buf.len();
        if len >= 4 {
            carry.copy_from_slice(&buf[len - 4..]);
            carried = 4;
        } else {
            let mut tail = Vec::with_capacity(8);
            tail.extend_from_slice(&carry[..carried]);
            tail.extend_from_slice(buf);
            let keep = tail.len().min(4);
            carry[..keep].copy_from_slice(&tail[tail.len() - keep..]);
            carried = keep;
        }
        bytes += len;
        reader.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

    /// A reader that returns at most `chunk` bytes per read, to split the
    /// input at every possible place.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let start = self.pos;
            let n = self.chunk.min(buf.remaining()).min(self.data.len() - start);
            buf.put_slice(&self.data[start..start + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// Reads one message from `input` in chunks of `chunk` bytes; returns
    /// what is left after it and the id found.
    async fn run(input: &[u8], chunk: usize, want_id: bool) -> (Vec<u8>, Data) {
        let source = Chunked {
            data: input.to_vec(),
            pos: 0,
            chunk,
        };
        let mut reader = BufReader::with_capacity(chunk, source);
        let finder = memmem::Finder::new(b"\r\n.\r\n");
        let data = read_data(&mut reader, &finder, want_id)
            .await
            .expect("the message ends");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.expect("read the rest");
        (rest, data)
    }

    #[tokio::test]
    async fn finds_the_end_of_data_at_every_split() {
        let message = b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n";
        for chunk in 1..message.len() {
            for want_id in [false, true] {
                let (rest, data) = run(message, chunk, want_id).await;
                assert_eq!(rest, b"QUIT\r\n", "chunk {chunk}");
                assert_eq!(data.bytes, message.len() - rest.len(), "chunk {chunk}");
                if want_id {
                    assert_eq!(data.id.as_deref(), Some(&b"<a@b>"[..]), "chunk {chunk}");
                }
            }
        }
    }

    #[tokio::test]
    async fn an_empty_message_ends_at_once() {
        for chunk in 1..6 {
            let (rest, data) = run(b".\r\nNOOP\r\n", chunk, false).await;
            assert_eq!(rest, b"NOOP\r\n");
            assert_eq!(data.bytes, 3);
        }
    }
}
