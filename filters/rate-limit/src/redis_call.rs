//! The request's side of the Redis store (`gw_rate_limit_store::RedisCall`
//! makes the call and reads its answer): wait paused, then admit, refuse,
//! or apply `redisStore.onUnavailable`.

use crate::http::{Phase, RateLimitHttp};
use gw_core::rate_limit::bill::Charge;
use gw_core::rate_limit::config::{OnUnavailable, RedisStore};
use gw_host::clock::now_ms;
use gw_host::port::Host;
use gw_rate_limit_store::{RedisCall, RedisOutcome};
use proxy_wasm::types::Action;

impl RateLimitHttp {
    pub(crate) fn ask_redis(
        &mut self,
        h: &mut dyn Host,
        store: &RedisStore,
        agent_id: String,
        charges: Vec<Charge>,
    ) -> Action {
        let nonce = format!("{}.{}.{}", self.request_id, self.context_id, now_ms(h));
        let config = std::rc::Rc::clone(&self.config);
        let outcome = RedisCall::dispatch(h, &config, store, agent_id, charges, nonce);
        self.on_redis(h, store.on_unavailable, outcome)
    }

    /// The answer to the callout `token`, if it is this request's.
    pub(crate) fn redis_answered(&mut self, h: &mut dyn Host, token: u32, body_size: usize) {
        let Some(call) = self.pending.take() else {
            return;
        };
        let config = std::rc::Rc::clone(&self.config);
        let Some(store) = config.redis.as_ref() else {
            return;
        };
        if self.phase != Phase::Waiting {
            self.pending = Some(call);
            return;
        }
        let outcome = call.answered(h, &config, store, token, body_size);
        self.on_redis(h, store.on_unavailable, outcome);
    }

    fn on_redis(&mut self, h: &mut dyn Host, mode: OnUnavailable, outcome: RedisOutcome) -> Action {
        match outcome {
            RedisOutcome::Waiting(call) => {
                self.pending = Some(call);
                self.phase = Phase::Waiting;
                Action::Pause
            }
            RedisOutcome::Decided {
                agent_id,
                charges,
                admission,
            } => self.apply(h, &agent_id, &charges, admission),
            RedisOutcome::Unavailable { agent_id, charges } => {
                self.metrics.redis_unavailable.inc(h);
                match mode {
                    OnUnavailable::Local => self.decide_locally(h, &agent_id, &charges),
                    OnUnavailable::Deny => {
                        self.unavailable(h, "the shared rate-limit store is unavailable")
                    }
                }
            }
        }
    }
}
