//! Files in and out of a sandbox through the engine's exec stream (`put PATH SIZE`, `get PATH`):
//! under gVisor the sandbox's root lives in its own memory, out of the engine's archive API's
//! reach, and no host path is ever involved. Runs as the shell's user, in the sandbox.
//!
//! Answers on stdout: `ok PATH` (put), `file SIZE NAME` + the bytes or `dir NAME` + a ustar
//! archive (get), or `error KIND MESSAGE` with KIND one of `notfound denied nospace isdir short
//! other`.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where the visitor's bash writes its working directory at every prompt (`inside::SHELL_SCRIPT`);
/// `/proc/PID/cwd` is not readable under gVisor.
pub const CWD_FILE: &str = "/tmp/.trythis-cwd";

/// A relative path is the shell's working directory's (else the exec's: the image's WORKDIR).
fn resolve(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let cwd = std::fs::read_to_string(CWD_FILE)
        .ok()
        .map(|s| PathBuf::from(s.trim_end_matches('\n')))
        .filter(|d| d.is_absolute() && d.is_dir())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("/"));
    cwd.join(p)
}

fn kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "notfound",
        K::PermissionDenied | K::ReadOnlyFilesystem => "denied",
        K::StorageFull | K::QuotaExceeded | K::OutOfMemory => "nospace",
        K::IsADirectory => "isdir",
        _ => "other",
    }
}

fn answer(line: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.replace('\n', " "));
    let _ = out.flush();
    if line.starts_with("ok ") {
        0
    } else {
        1
    }
}

/// `put PATH SIZE`: exactly SIZE bytes from stdin into PATH. They go to a hidden file beside it
/// first and take its name only when all arrived: a cut upload never leaves half a file.
pub fn put(path: &str, size: &str) -> i32 {
    let Ok(size) = size.parse::<u64>() else {
        return answer("error other bad size");
    };
    let target = resolve(path);
    if target.is_dir() {
        return answer(&format!("error isdir {} is a directory", target.display()));
    }
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return answer("error other no file name");
    };
    let temp = dir.join(format!(
        ".{}.trythis-upload-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<u64> {
        let mut f = std::fs::File::create(&temp)?;
        let n = std::io::copy(&mut std::io::stdin().lock().take(size), &mut f)?;
        f.flush()?;
        f.sync_all()?;
        Ok(n)
    })();
    match written {
        Ok(n) if n == size => match std::fs::rename(&temp, &target) {
            Ok(()) => answer(&format!("ok {}", target.display())),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                answer(&format!("error {} {e}", kind(&e)))
            }
        },
        Ok(n) => {
            let _ = std::fs::remove_file(&temp);
            answer(&format!("error short {n} of {size} bytes arrived"))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            answer(&format!("error {} {e}", kind(&e)))
        }
    }
}

/// `get PATH`: a file as it is, a directory as a ustar archive of its tree.
pub fn get(path: &str) -> i32 {
    let target = resolve(path);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    let meta = match std::fs::metadata(&target) {
        Ok(m) => m,
        Err(e) => return answer(&format!("error {} {}: {e}", kind(&e), target.display())),
    };
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let result = if meta.is_dir() {
        writeln!(out, "dir {name}").and_then(|_| {
            let mut tar = Tar { out: &mut out };
            tar.tree(&target, &name)?;
            tar.finish()
        })
    } else {
        match std::fs::File::open(&target) {
            Ok(mut f) => writeln!(out, "file {} {name}", meta.len())
                .and_then(|_| std::io::copy(&mut f, &mut out).map(|_| ())),
            Err(e) => {
                drop(out);
                return answer(&format!("error {} {}: {e}", kind(&e), target.display()));
            }
        }
    };
    match result.and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// A ustar writer (GNU long names for paths over 100 bytes): regular files, directories and
/// symbolic links; sockets, devices and unreadable files are left out.
struct Tar<'a, W: Write> {
    out: &'a mut W,
}

impl<W: Write> Tar<'_, W> {
    fn tree(&mut self, dir: &Path, name: &str) -> std::io::Result<()> {
        self.header(&format!("{name}/"), b'5', 0o755, 0, "")?;
        let mut entries: Vec<_> = match std::fs::read_dir(dir) {
            Ok(e) => e.flatten().collect(),
            Err(_) => return Ok(()),
        };
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let child = format!("{name}/{}", e.file_name().to_string_lossy());
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o7777
            };
            if meta.file_type().is_symlink() {
                if let Ok(to) = std::fs::read_link(&path) {
                    let to = to.to_string_lossy();
                    if to.len() <= 100 {
                        self.header(&child, b'2', 0o777, 0, &to)?;
                    }
                }
            } else if meta.is_dir() {
                self.tree(&path, &child)?;
            } else if meta.is_file() {
                let Ok(f) = std::fs::File::open(&path) else {
                    continue;
                };
                let size = meta.len();
                self.header(&child, b'0', mode, size, "")?;
                // The file may change while it is read: exactly `size` bytes go out.
                let n = std::io::copy(&mut f.take(size), self.out)?;
                self.zeros((size - n) as usize)?;
                self.pad(size)?;
            }
        }
        Ok(())
    }

    fn header(
        &mut self,
        name: &str,
        kind: u8,
        mode: u32,
        size: u64,
        link: &str,
    ) -> std::io::Result<()> {
        if name.len() > 100 {
            // GNU: a `././@LongLink` entry of type L carries the name.
            let long = name.as_bytes();
            self.raw_header("././@LongLink", b'L', 0o644, long.len() as u64 + 1, "")?;
            self.out.write_all(long)?;
            self.out.write_all(&[0])?;
            self.pad(long.len() as u64 + 1)?;
        }
        self.raw_header(name, kind, mode, size, link)
    }

    fn raw_header(
        &mut self,
        name: &str,
        kind: u8,
        mode: u32,
        size: u64,
        link: &str,
    ) -> std::io::Result<()> {
        let mut h = [0u8; 512];
        let name = &name.as_bytes()[..name.len().min(100)];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        octal(&mut h[136..148], mtime);
        h[156] = kind;
        let link = &link.as_bytes()[..link.len().min(100)];
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        octal(&mut h[148..155], sum);
        self.out.write_all(&h)
    }

    fn zeros(&mut self, n: usize) -> std::io::Result<()> {
        self.out.write_all(&vec![0u8; n])
    }

    fn pad(&mut self, size: u64) -> std::io::Result<()> {
        self.zeros(((512 - size % 512) % 512) as usize)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.zeros(1024)
    }
}

/// A NUL-terminated octal number filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    let digits = &digits.as_bytes()[digits.len() - (field.len() - 1)..];
    field[..digits.len()].copy_from_slice(digits);
    field[field.len() - 1] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_lists_files_with_their_bytes_and_long_names() {
        let root = std::env::temp_dir().join(format!("trythis-tar-{}", std::process::id()));
        let deep = root.join("d").join("x".repeat(120));
        std::fs::create_dir_all(&deep).expect("dirs");
        std::fs::write(root.join("d/a.txt"), b"hello").expect("write");
        std::fs::write(deep.join("b.txt"), vec![7u8; 700]).expect("write");
        let mut bytes = Vec::new();
        let mut tar = Tar { out: &mut bytes };
        tar.tree(&root.join("d"), "d").expect("tar");
        tar.finish().expect("end");
        let _ = std::fs::remove_dir_all(&root);
        // `tar` itself reads it back.
        let listing = std::process::Command::new("tar")
            .args(["-tvf", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().map(|mut i| i.write_all(&bytes));
                c.wait_with_output()
            })
            .expect("tar runs");
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.status.success(), "{text}");
        assert!(text.contains(" 5 ") && text.contains("d/a.txt"), "{text}");
        assert!(
            text.contains(" 700 ") && text.contains(&format!("d/{}/b.txt", "x".repeat(120))),
            "{text}"
        );
    }

    #[test]
    fn octal_fields_are_terminated() {
        let mut f = [0xffu8; 12];
        octal(&mut f, 700);
        assert_eq!(&f, b"00000001274\0");
    }
}
