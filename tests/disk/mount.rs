//! A small filesystem for one test's database: a loop-mounted ext4 image (the closest to a
//! real disk: its own free-block count, a journal, a read-only state), or tmpfs with a size
//! limit where loop devices are unavailable. Unmounted by `Drop`, even when a test fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which filesystem a [`SmallFs`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ext4,
    Tmpfs,
}

/// A mounted filesystem of a few MiB, in a temporary directory of its own.
pub struct SmallFs {
    pub kind: Kind,
    /// The mount point.
    pub path: PathBuf,
    /// The image file (ext4), outside the mount.
    image: Option<PathBuf>,
    mounted: bool,
    _dir: tempfile::TempDir,
}

/// Runs a command; its stderr as the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl SmallFs {
    /// An ext4 image of `mib` MiB (no blocks reserved for root: the test runs as root and
    /// must see the disk full), mounted with `options`.
    pub fn ext4(mib: u64, options: &str) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .map_err(|e| e.to_string())?;
        let image_s = image.to_str().ok_or("temp path is not UTF-8")?;
        run("mkfs.ext4", &["-q", "-F", "-m", "0", image_s])?;
        let opts = format!("loop,{options}");
        run(
            "mount",
            &["-t", "ext4", "-o", &opts, image_s, path.to_str().unwrap()],
        )?;
        Ok(SmallFs {
            kind: Kind::Ext4,
            path,
            image: Some(image),
            mounted: true,
            _dir: dir,
        })
    }

    /// tmpfs limited to `mib` MiB.
    pub fn tmpfs(mib: u64) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let opts = format!("size={mib}m");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &opts, "tmpfs", path.to_str().unwrap()],
        )?;
        Ok(SmallFs {
            kind: Kind::Tmpfs,
            path,
            image: None,
            mounted: true,
            _dir: dir,
        })
    }

    /// ext4 if it can be had, else tmpfs; the reasons when neither. `TASKBOX_DISK_FS=tmpfs`
    /// asks for tmpfs (to run the tests on both).
    pub fn any(mib: u64) -> Result<SmallFs, String> {
        if std::env::var("TASKBOX_DISK_FS").is_ok_and(|v| v == "tmpfs") {
            return SmallFs::tmpfs(mib);
        }
        SmallFs::ext4(mib, "rw").or_else(|ext4| {
            SmallFs::tmpfs(mib).map_err(|tmpfs| format!("ext4 image: {ext4}; tmpfs: {tmpfs}"))
        })
    }

    /// The block device behind an ext4 mount (`loop3`), for its /sys/fs/ext4 controls.
    pub fn device(&self) -> Option<String> {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", self.path.to_str()?])
            .output()
            .ok()?;
        let source = String::from_utf8(out.stdout).ok()?;
        Some(Path::new(source.trim()).file_name()?.to_str()?.to_string())
    }

    /// Unmounts; with `lazy`, even if something still holds a file there.
    pub fn unmount(&mut self, lazy: bool) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        let path = self.path.to_str().unwrap().to_string();
        if lazy {
            run("umount", &["-l", &path])?;
        } else {
            run("umount", &[&path])?;
        }
        self.mounted = false;
        Ok(())
    }

    /// Checks the unmounted ext4 image with `e2fsck -fy` (repairing what an error left) and
    /// mounts it again with `options`.
    pub fn fsck_and_mount(&mut self, options: &str) -> Result<(), String> {
        assert!(!self.mounted, "fsck of a mounted filesystem");
        let image = self.image.as_ref().ok_or("not an image")?;
        let image_s = image.to_str().unwrap();
        // e2fsck exits 1 when it corrected something: that is the point here.
        let status = Command::new("e2fsck")
            .args(["-f", "-y", image_s])
            .output()
            .map_err(|e| e.to_string())?;
        if !matches!(status.status.code(), Some(0 | 1)) {
            return Err(format!(
                "e2fsck: {} {}",
                status.status,
                String::from_utf8_lossy(&status.stdout)
            ));
        }
        let opts = format!("loop,{options}");
        run(
            "mount",
            &[
                "-t",
                "ext4",
                "-o",
                &opts,
                image_s,
                self.path.to_str().unwrap(),
            ],
        )?;
        self.mounted = true;
        Ok(())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if self.mounted && self.unmount(false).is_err() {
            // A process of the failed test still holds a file there: detach it anyway, so no
            // mount outlives the test (the kernel frees it when the last file closes).
            if let Err(e) = self.unmount(true) {
                eprintln!("could not unmount {}: {e}", self.path.display());
            }
        }
    }
}

/// Writes a file until the filesystem refuses (ENOSPC), first in MiB then in pages, and
/// syncs it so the blocks are really taken; returns the bytes written.
pub fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let mut written = 0u64;
    for size in [1 << 20, 4096, 512] {
        let block = vec![0xA5u8; size];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    // ext4 may only find out at allocation that the last pages do not fit.
    let _ = file.sync_all();
    written
}
