//! Fuzz target: config.json bytes through `validate::parse` and, when they parse,
//! `validate::check_structure`. Both must return an error for bad input, never panic,
//! abort or hang, whatever the bytes are.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // check_structure warns about ignored bind options; the log would swamp the run.
    QUIET.call_once(|| {
        if let Err(e) = kraal::logging::init(
            Some(std::path::Path::new("/dev/null")),
            kraal::logging::Format::Text,
            false,
        ) {
            panic!("fuzz setup: {e}");
        }
    });
    if let Ok(spec) = kraal::validate::parse(data) {
        let _ = kraal::validate::check_structure(&spec);
    }
});
