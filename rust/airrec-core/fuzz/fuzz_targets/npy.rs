//! Arbitrary bytes as a `.npy` file of every dtype a bundle uses, with and without an expected
//! shape: the reader must return an array or a typed error, and an array must be readable
//! to its last element.
#![no_main]

use std::io::Write;

use airrec_core::npy;
use libfuzzer_sys::fuzz_target;

fn exercise<T: npy::Element + PartialEq>(path: &std::path::Path) {
    if let Ok(a) = npy::load::<T>(path) {
        let n: usize = a.shape().iter().product();
        assert_eq!(a.len(), n, "shape {:?} but {} values", a.shape(), a.len());
        if let Some(last) = a.last() {
            assert!(*last == *last || std::any::type_name::<T>() == "f32");
        }
    }
    let _ = npy::load_shaped::<T>(path, &[None, Some(3)]);
}

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new_in("/dev/shm").expect("tmp file");
    f.write_all(data).expect("write");
    let path = f.path();
    exercise::<u8>(path);
    exercise::<i32>(path);
    exercise::<i64>(path);
    exercise::<f32>(path);
});
