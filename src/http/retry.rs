use super::ApiError;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How hard one request is retried before its window is given up for this run.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    /// A server asking for a longer wait than this is not waited for inside the request; the window fails
    /// and the next run picks it up, so one slow account cannot hold a whole run hostage.
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32, base_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base_delay,
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Runs `attempt` until it succeeds, fails with a non-transient error, or the retries are spent. Delays grow
/// exponentially with jitter (so replicas hitting the same 5xx do not retry in lockstep) and honour a
/// server's `Retry-After` when it gives one.
pub async fn with_retries<T, F, Fut>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_retries as usize)
        .with_jitter()
        .build();
    loop {
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ApiError::Cancelled),
            outcome = attempt() => outcome,
        };
        let err = match outcome {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => err,
        };
        let Some(backoff) = delays.next() else {
            return Err(err);
        };
        let delay = match err.retry_after() {
            Some(asked) if asked > policy.max_delay => return Err(err),
            Some(asked) => asked.max(backoff),
            None => backoff,
        };
        tracing::debug!(error = %err, delay_ms = delay.as_millis() as u64, "retrying request");
        tokio::select! {
            _ = cancel.cancelled() => return Err(ApiError::Cancelled),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> ApiError {
        ApiError::Status {
            what: "t".into(),
            status: 503,
            code: None,
            message: "unavailable".into(),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(3, Duration::from_millis(1));
        let result = with_retries(policy, &CancellationToken::new(), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(transient())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(2, Duration::from_millis(1));
        let result: Result<(), _> = with_retries(policy, &CancellationToken::new(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(5, Duration::from_millis(1));
        let result: Result<(), _> = with_retries(policy, &CancellationToken::new(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError::Rejected {
                what: "t".into(),
                message: "no".into(),
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
