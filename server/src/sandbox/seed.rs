//! runc only: the image's own files under each writable tmpfs directory of a sandbox (see
//! `sandbox::docker`). Which directories are writable, a cache of their archives per image, and
//! the rewriting that makes an archive fit for the engine's upload.
use crate::engine::UsernsRoot;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// runc: most bytes copied from the image into one sandbox's writable tmpfs directories at launch
/// (all directories together; one that would pass it keeps the image's read-only files).
pub const MAX_SEED_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of seed archives kept in memory across images.
const SEED_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Seed archives by (image, directory), evicted least-recently-used beyond a byte budget.
/// `None` = too big to copy into a tmpfs: that directory stays read-only.
#[derive(Default)]
pub(super) struct SeedCache {
    entries: HashMap<(String, String), Option<Bytes>>,
    order: VecDeque<(String, String)>,
    bytes: usize,
}

impl SeedCache {
    pub(super) fn get(&mut self, key: &(String, String)) -> Option<Option<Bytes>> {
        let v = self.entries.get(key)?.clone();
        if let Some(i) = self.order.iter().position(|k| k == key) {
            if let Some(k) = self.order.remove(i) {
                self.order.push_back(k);
            }
        }
        Some(v)
    }

    pub(super) fn insert(&mut self, key: (String, String), value: Option<Bytes>) {
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.map_or(0, |b| b.len());
            self.order.retain(|k| k != &key);
        }
        self.bytes += value.as_ref().map_or(0, |b| b.len());
        self.entries.insert(key.clone(), value);
        self.order.push_back(key);
        while self.bytes > SEED_CACHE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.entries.remove(&oldest) {
                self.bytes -= v.map_or(0, |b| b.len());
            }
        }
    }
}

/// A seed archive of `dir` made fit for the engine's upload: without the top-level entries named
/// in `drop` (with their extension headers), and with relative symlinks that leave `dir`
/// (`/etc/os-release -> ../usr/lib/os-release`, which the engine refuses to extract) made
/// absolute, so they point where they did. Under a user namespace the engine's download carries
/// host ids (root = `userns_root`) and its upload maps container ids: owners are shifted back.
pub(super) fn seed_archive(
    tar: &[u8],
    dir: &str,
    drop: &[&str],
    userns_root: UsernsRoot,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(tar.len());
    let mut group_start = 0;
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size = octal(&header[124..136]) as usize;
        let end = (at + 512 + size.div_ceil(512) * 512).min(tar.len());
        let kind = header[156];
        let header_at = at;
        at = end;
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            continue; // extension header: belongs to the next entry
        }
        let name = c_str(&header[..100]);
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if drop.contains(&name.as_str()) {
            group_start = end;
            continue;
        }
        let mut group = tar[group_start..end].to_vec();
        let h = header_at - group_start;
        let mut changed = false;
        if let Some((uid, gid)) = userns_root {
            for (field, base) in [(108..116, uid), (116..124, gid)] {
                let id = octal(&group[h + field.start..h + field.end]);
                if id >= u64::from(base) {
                    let shifted = format!("{:07o}\0", id - u64::from(base));
                    group[h + field.start..h + field.end].copy_from_slice(shifted.as_bytes());
                    changed = true;
                }
            }
        }
        let link = c_str(&header[157..257]);
        if kind == b'2' && !link.starts_with('/') {
            let parent = std::path::Path::new(dir).join(&name);
            let parent = parent.parent().unwrap_or(std::path::Path::new("/"));
            let absolute = normalize(&parent.join(&link));
            if !absolute.starts_with(&format!("{}/", dir.trim_end_matches('/')))
                && absolute.len() < 100
            {
                let field = &mut group[h + 157..h + 257];
                field.fill(0);
                field[..absolute.len()].copy_from_slice(absolute.as_bytes());
                changed = true;
            }
        }
        if changed {
            group[h + 148..h + 156].copy_from_slice(b"        ");
            let sum: u64 = group[h..h + 512].iter().map(|b| u64::from(*b)).sum();
            group[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        out.extend_from_slice(&group);
        group_start = end;
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn c_str(field: &[u8]) -> String {
    let len = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

fn octal(field: &[u8]) -> u64 {
    let s = c_str(field);
    u64::from_str_radix(s.trim(), 8).unwrap_or(0)
}

/// `/etc/../usr/lib/x` → `/usr/lib/x`, lexically.
fn normalize(path: &std::path::Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// runc: directories a program may expect to write (servers write pids under /run, logs under
/// /var/log, state under /var/lib; tools write /etc). /var/run is a link to /run in Debian.
pub(super) const RUNC_WRITABLE: &[&str] = &[
    "/tmp",
    "/var/tmp",
    "/root",
    "/home",
    "/run",
    "/var/log",
    "/var/lib",
    "/var/cache",
    "/etc",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_managed_files_leave_the_etc_seed() {
        let tar = crate::tar::tar_files(&[
            ("./hostname", b"img"),
            ("./passwd", b"root:x:0:0"),
            ("./resolv.conf", b"nameserver 1.1.1.1"),
            ("./hosts.allow", b"ALL"),
        ]);
        let kept = seed_archive(&tar, "/etc", &["hostname", "hosts", "resolv.conf"], None);
        let names: Vec<String> = kept
            .chunks(512)
            .filter(|h| h[257..262] == *b"ustar")
            .map(|h| {
                String::from_utf8_lossy(&h[..h.iter().position(|b| *b == 0).unwrap_or(100)])
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["./passwd", "./hosts.allow"]);
        assert_eq!(kept.len(), 2 * 1024 + 1024);
    }

    /// Under userns-remap the engine downloads host ids and uploads container ids: a seed of
    /// root's files (host uid 100000) and a utmp group file (100043) must go back as 0 and 43, with
    /// valid checksums, or the engine refuses the upload ("cannot be mapped to a host ID").
    #[test]
    fn seed_owners_shift_back_into_the_user_namespace() {
        let mut tar = crate::tar::tar_files(&[("./root-file", b"x"), ("./utmp", b"")]);
        for (h, uid, gid) in [(0usize, 100_000u64, 100_000u64), (1024, 100_000, 100_043)] {
            tar[h + 108..h + 116].copy_from_slice(format!("{uid:07o}\0").as_bytes());
            tar[h + 116..h + 124].copy_from_slice(format!("{gid:07o}\0").as_bytes());
        }
        let out = seed_archive(&tar, "/var/log", &[], Some((100_000, 100_000)));
        let headers: Vec<&[u8]> = out
            .chunks(512)
            .filter(|h| h[257..262] == *b"ustar")
            .collect();
        let ids: Vec<(u64, u64)> = headers
            .iter()
            .map(|h| (octal(&h[108..116]), octal(&h[116..124])))
            .collect();
        assert_eq!(ids, [(0, 0), (0, 43)]);
        for h in headers {
            let stored = octal(&h[148..156]);
            let sum: u64 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(*b)
                    }
                })
                .sum();
            assert_eq!(stored, sum, "header checksum");
        }
        // Without a user namespace nothing moves.
        let same = seed_archive(&tar, "/var/log", &[], None);
        assert_eq!(octal(&same[108..116]), 100_000);
    }

    #[test]
    fn relative_symlinks_leaving_the_seeded_dir_become_absolute() {
        let mut tar = crate::tar::tar_files(&[("./os-release", b""), ("./inside", b"")]);
        // Turn both entries into symlinks: one leaves /etc, one stays inside.
        for (h, target) in [(0usize, "../usr/lib/os-release"), (512, "sub/file")] {
            tar[h + 156] = b'2';
            tar[h + 157..h + 157 + target.len()].copy_from_slice(target.as_bytes());
        }
        let out = seed_archive(&tar, "/etc", &[], None);
        assert_eq!(c_str(&out[157..257]), "/usr/lib/os-release");
        assert_eq!(c_str(&out[512 + 157..512 + 257]), "sub/file");
        // The rewritten header's checksum is valid.
        let mut h = out[..512].to_vec();
        let stored = octal(&h[148..156]);
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|b| u64::from(*b)).sum::<u64>());
    }

    #[test]
    fn seed_cache_evicts_the_least_recently_used_beyond_its_budget() {
        let mut c = SeedCache::default();
        let chunk = || Some(Bytes::from(vec![0u8; SEED_CACHE_BYTES / 3]));
        let key = |i: u8| (format!("img{i}"), "/root".to_string());
        c.insert(key(1), chunk());
        c.insert(key(2), chunk());
        c.insert(key(3), chunk());
        assert!(c.get(&key(1)).is_some()); // 1 is now the most recent
        c.insert(key(4), chunk());
        assert!(c.get(&key(2)).is_none(), "the least recently used went");
        assert!(c.get(&key(1)).is_some() && c.get(&key(3)).is_some() && c.get(&key(4)).is_some());
        assert!(c.bytes <= SEED_CACHE_BYTES);
    }
}
