//! The controller's lock: a fact of the study folder, like its database.
//!
//! `<study>/controller.lock` holds the pid of the one controller that
//! writes the study, the host it runs on and, when it runs in a batch
//! allocation, the allocation's id. It is created exclusively and removed
//! when the controller ends; readers (`status`, `report`) only look at it.
//!
//! On the host that wrote it, a lock whose pid is gone is stale (checked in
//! /proc) and is taken over. On another host the pid cannot be checked, so
//! the lock holds, except for the same allocation: a batch job that was
//! requeued runs again, possibly on another node, and the scheduler runs one
//! incarnation of a job at a time, so the earlier one is gone.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::InputError;

/// The lock file of the study in `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join("controller.lock")
}

/// Who holds a study's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: String,
    /// Empty in locks written before hosts were recorded.
    pub host: String,
    pub allocation: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.host.is_empty() && self.host != this_host() {
            write!(f, " on {}", self.host)?;
        }
        if let Some(allocation) = &self.allocation {
            write!(f, ", allocation {allocation}")?;
        }
        Ok(())
    }
}

/// This machine's host name.
pub fn this_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    }
}

fn read(path: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().map(str::trim);
    let pid = lines.next().filter(|p| !p.is_empty())?.to_owned();
    let host = lines.next().unwrap_or("").to_owned();
    let allocation = lines.next().filter(|a| !a.is_empty()).map(str::to_owned);
    Some(Holder { pid, host, allocation })
}

/// Whether `holder` may still be running: on this host, its pid is alive
/// (in /proc on Linux; elsewhere any pid counts); on another, it may be.
fn may_be_alive(holder: &Holder) -> bool {
    if !holder.host.is_empty() && holder.host != this_host() {
        return true;
    }
    !Path::new("/proc/self").exists() || Path::new("/proc").join(&holder.pid).exists()
}

/// The controller running the study in `dir`, if one may be.
pub fn lock_holder(dir: &Path) -> Option<Holder> {
    read(&lock_path(dir)).filter(may_be_alive)
}

/// Keeps a second controller off a study; removed on drop.
#[derive(Debug)]
pub struct StudyLock {
    path: PathBuf,
}

impl StudyLock {
    /// Takes the lock of the study in `dir` for this process, which runs in
    /// `allocation` (a batch job's id) when given.
    pub fn acquire(dir: &Path, allocation: Option<&str>) -> anyhow::Result<Self> {
        let path = lock_path(dir);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{}\n{}\n{}", std::process::id(), this_host(), allocation.unwrap_or(""))?;
                    return Ok(Self { path });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    if let Some(holder) = read(&path) {
                        // A requeued job runs again, maybe elsewhere, only once the earlier run is gone.
                        let earlier_run_elsewhere = allocation.is_some()
                            && holder.allocation.as_deref() == allocation
                            && holder.host != this_host();
                        if may_be_alive(&holder) && !earlier_run_elsewhere {
                            return Err(InputError::new(
                                path.display().to_string(),
                                format!("another controller ({holder}) is running this study"),
                            )
                            .with_hint("wait for it, or delete the lock file if that process is gone")
                            .into());
                        }
                    }
                    std::fs::remove_file(&path).ok();
                }
                Err(err) => return Err(err).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        anyhow::bail!("cannot take the lock {}", path.display())
    }
}

impl Drop for StudyLock {
    fn drop(&mut self) {
        std::fs::remove_file(&self.path).ok();
    }
}

/// Serialises the writes of outside drivers (`study ask`, `study tell`,
/// from any number of processes and hosts): an exclusive `flock` on
/// `<study>/driver.lock`, waited for, and released by the kernel when the
/// holder exits however it ends, so a killed driver leaves no stale lock.
#[derive(Debug)]
pub struct DriverLock {
    _file: std::fs::File,
}

impl DriverLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        let path = dir.join("driver.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock {}", path.display()))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Self { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_and_stale_locks() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StudyLock::acquire(dir.path(), None).unwrap();
        let holder = lock_holder(dir.path()).unwrap();
        assert_eq!(holder.pid, std::process::id().to_string());
        assert_eq!(holder.host, this_host());
        let err = StudyLock::acquire(dir.path(), None).unwrap_err();
        assert!(format!("{err}").contains("another controller"), "{err}");
        drop(lock);
        assert!(lock_holder(dir.path()).is_none());

        // A dead pid on this host is stale; a pid elsewhere holds, unless
        // it is this allocation's earlier incarnation.
        std::fs::write(lock_path(dir.path()), format!("999999999\n{}\n", this_host())).unwrap();
        assert!(lock_holder(dir.path()).is_none());
        drop(StudyLock::acquire(dir.path(), None).unwrap());
        std::fs::write(lock_path(dir.path()), "42\nother-node\n77\n").unwrap();
        assert_eq!(lock_holder(dir.path()).unwrap().to_string(), "pid 42 on other-node, allocation 77");
        assert!(StudyLock::acquire(dir.path(), Some("78")).is_err());
        drop(StudyLock::acquire(dir.path(), Some("77")).unwrap());
    }
}
