//! Backup files: a consistent state-machine snapshot in a checked envelope.
//!
//! Layout (little-endian): the 8-byte magic `CONCORD\x01`, the store revision (u64),
//! the payload length (u64), the CRC-32 of the payload (u32), then the payload — the
//! state machine's own versioned snapshot bytes. The envelope catches truncated or
//! damaged files before anything is restored from them.

use std::io::Write;
use std::path::{Path, PathBuf};

/// First bytes of every backup file; the last byte is the envelope version.
pub const MAGIC: &[u8; 8] = b"CONCORD\x01";
const HEADER: usize = 8 + 8 + 8 + 4;
/// The file a restored data directory holds until the first start applies it.
pub const SEED_FILE: &str = "restore-seed.backup";

/// Why a backup cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Concord backup (bad magic bytes)")]
    NotABackup,
    #[error("the backup is truncated: expected {expected} payload bytes, found {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("the backup is damaged: checksum mismatch")]
    Checksum,
    #[error("the backup's snapshot is unreadable: {0}")]
    Snapshot(#[from] concord_state::SnapshotError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not empty; restore only seeds a new data directory")]
    DataDirInUse(PathBuf),
}

/// Wraps snapshot bytes taken at `revision`.
pub fn encode(revision: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A verified backup: its revision and the snapshot bytes inside.
#[derive(Debug)]
pub struct Backup<'a> {
    pub revision: u64,
    pub snapshot: &'a [u8],
}

/// Checks the envelope and that the snapshot inside decodes.
pub fn decode(bytes: &[u8]) -> Result<Backup<'_>, BackupError> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let revision = u64_at(8);
    let len = u64_at(16);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[24..28]);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(BackupError::Truncated {
            expected: len,
            found: payload.len() as u64,
        });
    }
    if crc32fast::hash(payload) != u32::from_le_bytes(crc) {
        return Err(BackupError::Checksum);
    }
    concord_state::StateMachine::restore(payload, Default::default())?;
    Ok(Backup {
        revision,
        snapshot: payload,
    })
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename, fsync of the directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let io = |source| BackupError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Seeds a new data directory from a backup file: the next start of a node with
/// `--bootstrap` (or `concord dev`) on it proposes the backup as its first change.
pub fn seed_data_dir(backup_file: &Path, data_dir: &Path) -> Result<u64, BackupError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let bytes = std::fs::read(backup_file).map_err(io(backup_file))?;
    let revision = decode(&bytes)?.revision;
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .next()
            .is_some()
    {
        return Err(BackupError::DataDirInUse(data_dir.to_owned()));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    write_file(&data_dir.join(SEED_FILE), &bytes)?;
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_state::{Command, HistoryLimits, StateMachine};

    fn snapshot() -> (u64, Vec<u8>) {
        let mut sm = StateMachine::new(HistoryLimits::default());
        sm.apply(Command::Put {
            key: "a".into(),
            value: b"1".to_vec(),
            lease: None,
            cas: None,
        });
        (sm.revision(), sm.snapshot())
    }

    #[test]
    fn round_trip() {
        let (rev, snap) = snapshot();
        let file = encode(rev, &snap);
        let b = decode(&file).unwrap();
        assert_eq!(b.revision, rev);
        assert_eq!(b.snapshot, snap.as_slice());
    }

    #[test]
    fn damage_is_detected() {
        let (rev, snap) = snapshot();
        let file = encode(rev, &snap);
        assert!(matches!(decode(b"hello"), Err(BackupError::NotABackup)));
        assert!(matches!(
            decode(&file[..file.len() - 1]),
            Err(BackupError::Truncated { .. })
        ));
        let mut flipped = file.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(decode(&flipped), Err(BackupError::Checksum)));
    }

    #[test]
    fn seeding_refuses_a_used_data_dir() {
        let (rev, snap) = snapshot();
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("b.backup");
        std::fs::write(&file, encode(rev, &snap)).unwrap();
        let fresh = tmp.path().join("fresh");
        assert_eq!(seed_data_dir(&file, &fresh).unwrap(), rev);
        assert!(fresh.join(SEED_FILE).exists());
        assert!(matches!(
            seed_data_dir(&file, &fresh),
            Err(BackupError::DataDirInUse(_))
        ));
    }
}
