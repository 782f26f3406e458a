//! Leaf helper: tar archives of in-memory files (build contexts, sandbox seeds).

/// A one-file tar archive (the build context is the Dockerfile alone).
pub fn tar_single_file(name: &str, data: &[u8]) -> Vec<u8> {
    tar_files(&[(name, data)])
}

/// A tar archive of regular files (a build context).
pub fn tar_files(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        out.extend(tar_entry(name, data));
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn tar_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    let octal = |buf: &mut [u8], v: u64| {
        let s = format!("{:0width$o}\0", v, width = buf.len() - 1);
        buf.copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::tar_single_file;

    #[test]
    fn tar_has_header_payload_and_end_blocks() {
        let t = tar_single_file("Dockerfile", b"FROM x\n");
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[..10], b"Dockerfile");
        assert_eq!(&t[257..262], b"ustar");
        assert_eq!(&t[512..519], b"FROM x\n");
        assert!(t.len() >= 512 * 4);
    }
}
