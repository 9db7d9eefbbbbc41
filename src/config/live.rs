//! `Live<T>`: a setting swapped whole when the gateway's file is reloaded.
//! Readers take an `Arc` snapshot (one uncontended read lock), so a request
//! sees either the old value or the new one, never a mix.

use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(RwLock::new(Arc::new(value)))
    }

    /// The current value.
    pub fn load(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value; readers that already hold a snapshot keep theirs.
    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}
