//! Durable storage on the local file system: an append-only file of checksummed records, group
//! commit (one fsync per `sync`), and compaction by atomic rename after a snapshot.
//! The only module of this crate that does IO.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::codec;
use crate::replica::{PersistRequest, RecoveredState};
use crate::storage::{Replay, Storage, StorageError, repair_marker};

/// Storage in a directory: `raft.log` holds the records.
#[derive(Debug)]
pub struct FileStorage {
    directory: PathBuf,
    file: File,
    buffer: Vec<u8>,
    compact_on_sync: bool,
}

const LOG_NAME: &str = "raft.log";
const TEMPORARY_NAME: &str = "raft.log.tmp";
const CORRUPT_NAME: &str = "raft.log.corrupt";

impl FileStorage {
    /// Opens (creating if needed) storage in `directory`. A torn tail is cut off; a corrupt record
    /// and everything after it are moved to `raft.log.corrupt` and replaced by a repair marker, so
    /// records appended from now on stay readable.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self, StorageError> {
        let directory = directory.as_ref().to_path_buf();
        fs::create_dir_all(&directory)?;
        let path = directory.join(LOG_NAME);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        let scan = Replay::scan(&bytes);
        if scan.valid_bytes < bytes.len() {
            if scan.corrupted {
                let mut evidence = File::create(directory.join(CORRUPT_NAME))?;
                evidence.write_all(&bytes[scan.valid_bytes..])?;
                evidence.sync_all()?;
            }
            file.set_len(scan.valid_bytes as u64)?;
            let mut appender = &file;
            if scan.corrupted {
                appender.write_all(&codec::encode_frame(&repair_marker())?)?;
            }
            file.sync_all()?;
        }
        Ok(Self {
            directory,
            file,
            buffer: Vec::new(),
            compact_on_sync: false,
        })
    }

    fn read_all(&self) -> Result<Vec<u8>, StorageError> {
        let mut bytes = Vec::new();
        File::open(self.directory.join(LOG_NAME))?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Rewrites the log as one checkpoint record: write a temporary file, fsync it, rename it over
    /// the log, fsync the directory, so a crash leaves either the old or the new file.
    fn compact(&mut self) -> Result<(), StorageError> {
        let scan = Replay::scan(&self.read_all()?);
        if scan.corrupted {
            return Ok(()); // corrupted after open (disk fault): load() reports it
        }
        let temporary = self.directory.join(TEMPORARY_NAME);
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&codec::encode_frame(&scan.replay.checkpoint())?)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, self.directory.join(LOG_NAME))?;
        File::open(&self.directory)?.sync_all()?;
        self.file = OpenOptions::new()
            .append(true)
            .open(self.directory.join(LOG_NAME))?;
        Ok(())
    }
}

impl Storage for FileStorage {
    fn write(&mut self, request: &PersistRequest) -> Result<(), StorageError> {
        let frame = codec::encode_frame(request)?;
        self.buffer.extend_from_slice(&frame);
        self.compact_on_sync |= request.snapshot.is_some();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.buffer.is_empty() {
            self.file.write_all(&self.buffer)?;
            self.buffer.clear();
            self.file.sync_data()?;
        }
        if std::mem::take(&mut self.compact_on_sync) {
            self.compact()?;
        }
        Ok(())
    }

    fn load(&self) -> Result<RecoveredState, StorageError> {
        Ok(Replay::scan(&self.read_all()?).replay.into_recovered())
    }
}
