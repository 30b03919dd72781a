//! The newest snapshot on disk, replaced atomically.
//!
//! One file, `current.snapshot`, holds openraft's metadata (last applied log id,
//! membership) and the state machine's bytes. It is replaced by writing
//! `current.snapshot.tmp`, fsyncing it, renaming it over the old one and fsyncing
//! the directory, so a crash leaves either the old or the new snapshot, never a
//! torn one, and only the newest is kept.
//!
//! Layout: magic (8 bytes) | meta length (u64 LE) | meta (postcard) | data length (u64 LE) | data.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::codec;
use crate::type_config::{LogId, SnapshotMeta};

const MAGIC: &[u8; 8] = b"CCRDSNP1";
const FILE_NAME: &str = "current.snapshot";
const TMP_NAME: &str = "current.snapshot.tmp";
/// Snapshot bytes written between two syncs. One burst of megabytes to the disk
/// holds the log's small fsyncs (every write waits on one) behind it; syncing
/// along the way lets them through in between.
const SYNC_CHUNK: usize = 256 * 1024;

/// A snapshot read back from disk.
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

/// The snapshot directory. Writes are serialized so a slow build of an older
/// snapshot can never replace a newer one installed from the leader meanwhile.
pub(crate) struct SnapshotFiles {
    dir: PathBuf,
    /// The last log id covered by the file on disk (`None`: no file yet).
    current: Mutex<Option<Option<LogId>>>,
}

impl SnapshotFiles {
    /// Opens `dir` (creating it), drops a leftover temp file, and loads the snapshot if any.
    pub(crate) fn open(dir: &Path) -> io::Result<(SnapshotFiles, Option<StoredSnapshot>)> {
        fs::create_dir_all(dir)?;
        match fs::remove_file(dir.join(TMP_NAME)) {
            Ok(()) => tracing::info!(dir = %dir.display(), "removed an unfinished snapshot"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let files = SnapshotFiles {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
        };
        let loaded = files.load()?;
        *files.lock()? = loaded.as_ref().map(|s| s.meta.last_log_id);
        Ok((files, loaded))
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Option<Option<LogId>>>> {
        self.current
            .lock()
            .map_err(|_| io::Error::other("snapshot directory lock poisoned"))
    }

    /// Reads the current snapshot, if one was ever written.
    pub(crate) fn load(&self) -> io::Result<Option<StoredSnapshot>> {
        let path = self.dir.join(FILE_NAME);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        decode(&bytes).map(Some).map_err(|msg| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {msg}", path.display()),
            )
        })
    }

    /// Makes `meta` + `data` the current snapshot, durably, unless the one on disk
    /// already covers a later log id. Returns whether it was written.
    pub(crate) fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<bool> {
        let mut current = self.lock()?;
        if current.is_some_and(|on_disk| on_disk > meta.last_log_id) {
            return Ok(false);
        }
        let meta_bytes = codec::encode(meta).map_err(io::Error::other)?;
        let tmp = self.dir.join(TMP_NAME);
        {
            let mut file = File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&(meta_bytes.len() as u64).to_le_bytes())?;
            file.write_all(&meta_bytes)?;
            file.write_all(&(data.len() as u64).to_le_bytes())?;
            for chunk in data.chunks(SYNC_CHUNK) {
                file.write_all(chunk)?;
                file.sync_data()?;
            }
            file.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(FILE_NAME))?;
        File::open(&self.dir)?.sync_all()?;
        *current = Some(meta.last_log_id);
        Ok(true)
    }
}

fn decode(bytes: &[u8]) -> Result<StoredSnapshot, String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a snapshot file (bad magic)")?;
    let (meta_bytes, rest) = take_prefixed(rest).ok_or("truncated metadata")?;
    let (data, rest) = take_prefixed(rest).ok_or("truncated data")?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    let meta = codec::decode(meta_bytes).map_err(|e| format!("bad metadata: {e}"))?;
    Ok(StoredSnapshot {
        meta,
        data: data.to_vec(),
    })
}

/// Splits a u64-LE length-prefixed chunk off the front.
fn take_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests;
