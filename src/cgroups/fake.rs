//! A fake cgroup directory for unit tests: a temp dir seeded with control files.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct FakeDir(pub PathBuf);

impl FakeDir {
    pub fn new(files: &[(&str, &str)]) -> FakeDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "kraal-fakecg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&d).unwrap();
        for (f, v) in files {
            fs::write(d.join(f), v).unwrap();
        }
        FakeDir(d)
    }

    pub fn get(&self, f: &str) -> String {
        fs::read_to_string(self.0.join(f)).unwrap()
    }

    pub fn set(&self, f: &str, v: &str) {
        fs::write(self.0.join(f), v).unwrap()
    }
}

impl Drop for FakeDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
