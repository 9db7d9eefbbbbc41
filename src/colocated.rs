//! A Pingora service that runs a background future on the proxy's own
//! runtime: the gateway link lives on the thread that serves its requests,
//! so handing a gateway event to a waiting request is a local task wake-up,
//! not a wake-up of another runtime's thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use async_trait::async_trait;
use pingora::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::Service;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wraps `inner` (a listening service) and spawns `task` on its runtime
/// just before the listeners start.
pub struct WithTask<S> {
    inner: S,
    // A Mutex only to make the service `Sync`; taken once at start.
    task: Mutex<Option<Task>>,
}

impl<S> WithTask<S> {
    pub fn new(inner: S, task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self { inner, task: Mutex::new(Some(Box::pin(task))) }
    }
}

#[async_trait]
impl<S: Service> Service for WithTask<S> {
    async fn start_service(&mut self, fds: Option<ListenFds>, shutdown: ShutdownWatch, listeners_per_fd: usize) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            tokio::spawn(task);
        }
        self.inner.start_service(fds, shutdown, listeners_per_fd).await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.inner.runtime_opts_override(global)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}
