//! Files in and out of a running sandbox (`PUT`/`GET /api/sandboxes/{id}/files?path=`): the
//! relay's `put`/`get` through an engine exec (`exec_io`), so it works under gVisor, whose
//! in-memory root the engine's archive API cannot see, and no host path is ever involved.
//! A relative path is the visitor's shell's working directory's.
use super::{exec_io::ExecIo, runtime::RuntimeError, SandboxService};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Longest path accepted (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}")]
    BadPath(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Denied(String),
    #[error("The sandbox has no room for this file: {0}")]
    NoSpace(String),
    #[error("{0} is a directory: give a file name to upload to.")]
    IsDirectory(String),
    #[error("The upload ended before all its bytes arrived; nothing was written.")]
    Incomplete,
    #[error("The sandbox is not running.")]
    NotRunning,
    #[error("files: {0}")]
    Failed(String),
}

impl From<RuntimeError> for FilesError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotReady(_) => FilesError::NotRunning,
            other => FilesError::Failed(other.to_string()),
        }
    }
}

/// A path the relay may be given: not empty, no `..` step (a sandbox is its visitor's own, but a
/// path that climbs is a mistake or a probe, and gets a plain answer), no control characters.
pub fn check_path(path: &str) -> Result<(), FilesError> {
    let bad = |m: &str| Err(FilesError::BadPath(m.to_string()));
    if path.is_empty() {
        return bad("Give a path (`?path=notes.txt`).");
    }
    if path.len() > MAX_PATH {
        return bad("That path is too long.");
    }
    if path.chars().any(char::is_control) {
        return bad("A path may not hold control characters.");
    }
    if path.split('/').any(|step| step == "..") {
        return bad(
            "A path may not climb with `..`: give it from / or from the shell's directory.",
        );
    }
    Ok(())
}

/// What a download is: one file of a known size, or a directory streamed as a tar archive.
pub enum Download {
    File { name: String, size: u64 },
    Directory { name: String },
}

/// A download's header and the stream of its bytes.
pub struct DownloadStream {
    pub what: Download,
    pub body: tokio_util::io::ReaderStream<BufReader<ExecIo>>,
}

fn answer_error(line: &str, path: &str) -> FilesError {
    let mut parts = line.trim_end().splitn(3, ' ');
    let (_, kind, message) = (
        parts.next(),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    match kind {
        "notfound" => FilesError::NotFound(format!("There is no {path} in the sandbox.")),
        "denied" => FilesError::Denied(format!("The sandbox's user may not use {path}.")),
        "nospace" => FilesError::NoSpace(message.to_string()),
        "isdir" => FilesError::IsDirectory(path.to_string()),
        "short" => FilesError::Incomplete,
        _ => FilesError::Failed(format!("{kind} {message}")),
    }
}

/// The relay's first line (at most 4 KiB).
async fn first_line(reader: &mut BufReader<ExecIo>) -> Result<String, FilesError> {
    let mut line = Vec::new();
    (&mut *reader)
        .take(4096)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| FilesError::Failed(e.to_string()))?;
    if line.is_empty() {
        let why = reader.get_ref().stderr();
        return Err(if why.is_empty() {
            FilesError::NotRunning
        } else {
            FilesError::Failed(why)
        });
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches('\n')
        .to_string())
}

impl SandboxService {
    /// Writes exactly `size` bytes of `body` to `path` in the sandbox; returns the absolute path
    /// it landed at. A body that ends early or fails leaves nothing behind.
    pub async fn put_file<E: std::fmt::Display>(
        &self,
        id: &str,
        path: &str,
        size: u64,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<String, FilesError> {
        check_path(path)?;
        let size_arg = size.to_string();
        let mut io = self.runtime.relay(id, &["put", path, &size_arg]).await?;
        let mut sent = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // The browser went away: dropping the exec's stdin tells the relay (`short`).
                Err(_) => return Err(FilesError::Incomplete),
            };
            sent += chunk.len() as u64;
            if sent > size {
                return Err(FilesError::Incomplete);
            }
            if io.write_all(&chunk).await.is_err() {
                break; // the relay stopped reading: its answer says why
            }
        }
        let _ = io.flush().await;
        let mut reader = BufReader::new(io);
        let line = first_line(&mut reader).await?;
        match line.strip_prefix("ok ") {
            Some(landed) if sent == size => Ok(landed.to_string()),
            Some(_) => Err(FilesError::Incomplete),
            None => Err(answer_error(&line, path)),
        }
    }

    /// The file or directory at `path` in the sandbox.
    pub async fn get_file(&self, id: &str, path: &str) -> Result<DownloadStream, FilesError> {
        check_path(path)?;
        let io = self.runtime.relay(id, &["get", path]).await?;
        let mut reader = BufReader::with_capacity(64 * 1024, io);
        let line = first_line(&mut reader).await?;
        let what = if let Some(rest) = line.strip_prefix("file ") {
            let (size, name) = rest.split_once(' ').unwrap_or((rest, "download"));
            Download::File {
                name: name.to_string(),
                size: size
                    .parse()
                    .map_err(|_| FilesError::Failed(format!("relay said {line:?}")))?,
            }
        } else if let Some(name) = line.strip_prefix("dir ") {
            Download::Directory {
                name: name.to_string(),
            }
        } else {
            return Err(answer_error(&line, path));
        };
        Ok(DownloadStream {
            what,
            body: tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_climb_or_hide_control_characters_are_refused() {
        for bad in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/tmp/..",
            "a\nb",
            "a\0b",
            &"x".repeat(5000),
        ] {
            assert!(
                matches!(check_path(bad), Err(FilesError::BadPath(_))),
                "{bad:?}"
            );
        }
        for good in ["notes.txt", "/tmp/a b.csv", "dir/..hidden", "./x", "/"] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn relay_errors_become_answers() {
        assert!(matches!(
            answer_error("error notfound x", "p"),
            FilesError::NotFound(_)
        ));
        assert!(matches!(
            answer_error("error nospace disk full", "p"),
            FilesError::NoSpace(_)
        ));
        assert!(matches!(
            answer_error("error short 1 of 2", "p"),
            FilesError::Incomplete
        ));
        assert!(matches!(
            answer_error("error isdir /tmp", "p"),
            FilesError::IsDirectory(_)
        ));
    }
}
