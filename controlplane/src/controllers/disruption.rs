//! (being written: issue 6)

use kube::Client;
use tokio_util::sync::CancellationToken;

use super::ControllerOptions;

/// Runs until `shutdown`.
pub async fn run(client: Client, options: ControllerOptions, shutdown: CancellationToken) {
    let _ = (client, options);
    shutdown.cancelled().await;
}
