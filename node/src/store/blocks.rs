//! On-disk block files: `<root>/ab/cd/<hex id>`, each a 20-byte header (magic, length,
//! crc32c) followed by the data. Written to a temp file, fsynced, renamed into place and the
//! directory fsynced, so an acknowledged block survives a crash; verified on every read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_proto::BlockId;

const MAGIC: &[u8; 8] = b"CAIRNBK1";
const HEADER_LEN: usize = 20;

/// Errors reading a block.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block not found")]
    NotFound,
    #[error("block is corrupt: {0}")]
    Corrupt(String),
    #[error("offset/length outside the block")]
    OutOfRange,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Read buffers kept for reuse: serving a block then costs no fresh memory (which the
/// allocator would map, the kernel fault in and zero for every block read).
#[derive(Debug, Default)]
struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept at most, and the largest one kept.
const POOL_BUFFERS: usize = 32;
const POOL_MAX_CAPACITY: usize = 4 * 1024 * 1024;

impl BufferPool {
    /// An empty buffer with room for `len` bytes.
    fn take(&self, len: usize) -> Vec<u8> {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .filter(|b| b.capacity() >= len);
        match reused {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => Vec::with_capacity(len),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() > POOL_MAX_CAPACITY {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOL_BUFFERS {
            free.push(buf);
        }
    }
}

/// A pooled buffer lent to a [`Bytes`]; returns to its pool when the last slice is dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// The block files of one node.
#[derive(Debug, Clone)]
pub struct BlockStore {
    root: PathBuf,
    tmp: PathBuf,
    buffers: Arc<BufferPool>,
}

impl BlockStore {
    /// Opens (creating) the block directory; leftovers of interrupted writes are removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(Self {
            root: root.to_path_buf(),
            tmp,
            buffers: Default::default(),
        })
    }

    fn path(&self, id: &BlockId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..4]).join(hex)
    }

    /// Writes a block durably from its chunks. Blocking: call from `spawn_blocking`.
    pub fn put(&self, id: &BlockId, chunks: &[Bytes]) -> io::Result<()> {
        let len: usize = chunks.iter().map(|c| c.len()).sum();
        let crc = chunks
            .iter()
            .fold(0u32, |crc, c| crc32c::crc32c_append(crc, c));
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&(len as u64).to_be_bytes());
        header[16..].copy_from_slice(&crc.to_be_bytes());

        let tmp_path = self
            .tmp
            .join(format!("{}.{}", id.to_hex(), rand::random::<u32>()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        let mut bufs: Vec<io::IoSlice> = Vec::with_capacity(chunks.len() + 1);
        bufs.push(io::IoSlice::new(&header));
        bufs.extend(chunks.iter().map(|c| io::IoSlice::new(c)));
        write_all_vectored(&mut file, &mut bufs)?;
        file.sync_data()?;
        drop(file);

        let path = self.path(id);
        let dir = path.parent().expect("block paths have a parent");
        fs::create_dir_all(dir)?;
        fs::rename(&tmp_path, &path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Reads `length` bytes from `offset` (0 = to the end) after verifying the checksum of
    /// the whole block. Blocking: call from `spawn_blocking`.
    pub fn get(&self, id: &BlockId, offset: u64, length: u64) -> Result<Bytes, BlockError> {
        let mut file = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlockError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)
            .map_err(|_| BlockError::Corrupt("short header".into()))?;
        if &header[..8] != MAGIC {
            return Err(BlockError::Corrupt("bad magic".into()));
        }
        let len = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
        let crc = u32::from_be_bytes(header[16..].try_into().expect("4 bytes"));
        let file_len = file.metadata()?.len();
        if file_len != len + HEADER_LEN as u64 {
            return Err(BlockError::Corrupt(format!(
                "length {file_len} != {}",
                len + 20
            )));
        }
        // Read into a reused buffer's spare capacity (no zeroing); the position is right after
        // the header.
        let mut data = self.buffers.take(len as usize);
        let read = (&file).take(len).read_to_end(&mut data);
        let data = Pooled {
            buf: data,
            pool: self.buffers.clone(),
        };
        read?;
        if data.buf.len() as u64 != len {
            return Err(BlockError::Corrupt("short data".into()));
        }
        if crc32c::crc32c(&data.buf) != crc {
            return Err(BlockError::Corrupt("checksum mismatch".into()));
        }
        let end = if length == 0 {
            len
        } else {
            offset.checked_add(length).ok_or(BlockError::OutOfRange)?
        };
        if offset > len || end > len {
            return Err(BlockError::OutOfRange);
        }
        Ok(Bytes::from_owner(data).slice(offset as usize..end as usize))
    }

    /// Whether the block file exists.
    pub fn contains(&self, id: &BlockId) -> bool {
        self.path(id).exists()
    }

    /// Removes a block file (absent is fine).
    /// Size of the block's file on disk (header included), if it exists.
    pub fn size(&self, id: &BlockId) -> io::Result<u64> {
        Ok(fs::metadata(self.path(id))?.len())
    }

    pub fn delete(&self, id: &BlockId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn write_all_vectored(file: &mut File, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = file.write_vectored(bufs)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_ranges_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path()).unwrap();
        let id = BlockId::random();
        store
            .put(
                &id,
                &[Bytes::from_static(b"hello "), Bytes::from_static(b"world")],
            )
            .unwrap();
        assert_eq!(&store.get(&id, 0, 0).unwrap()[..], b"hello world");
        assert_eq!(&store.get(&id, 6, 5).unwrap()[..], b"world");
        assert!(matches!(store.get(&id, 6, 6), Err(BlockError::OutOfRange)));
        assert!(matches!(
            store.get(&BlockId::random(), 0, 0),
            Err(BlockError::NotFound)
        ));

        // Flip one data byte: the checksum must catch it.
        let path = store.path(&id);
        let mut raw = fs::read(&path).unwrap();
        raw[HEADER_LEN + 1] ^= 0x40;
        fs::write(&path, raw).unwrap();
        assert!(matches!(store.get(&id, 0, 0), Err(BlockError::Corrupt(_))));
        store.delete(&id).unwrap();
        assert!(!store.contains(&id));
    }
}
