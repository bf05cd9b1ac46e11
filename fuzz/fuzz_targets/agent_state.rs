//! The seccomp agent's container process state, as runc and crun send it: the parser never
//! panics; the fd it picks is one that came; accelgate's own `listenerMetadata`, written back,
//! reads the same.
#![no_main]

use accelgate::daemon::{Metadata, ProcessState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(state) = ProcessState::parse(bytes) else {
        return;
    };
    for received in 0..4 {
        if let Some(index) = state.seccomp_fd_index(received) {
            assert!(index < received, "fd {index} of {received} received");
        }
    }
    if let Some(metadata) = Metadata::parse(&state.metadata) {
        assert_eq!(Metadata::parse(&metadata.render()), Some(metadata));
    }
});
