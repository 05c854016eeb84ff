//! An in-memory host for unit tests of adapters and of the chain: header
//! maps, buffers, properties, shared data with CAS, queues, callouts,
//! replies, ticks, a settable clock and metrics, all plain data a test can
//! set up and inspect. Every call is counted by name ([`MemoryHost::calls`]),
//! so a test can pin how many host round trips a request costs.

use crate::port::Host;
use proxy_wasm::types::{BufferType, Bytes, MapType, MetricType, Status};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A callout a filter dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    pub token: u32,
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// A local reply a filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A metric a filter defined, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub kind: MetricType,
    pub name: String,
    pub value: i64,
}

#[derive(Debug, Default)]
pub struct MemoryHost {
    headers: BTreeMap<u32, Vec<(String, String)>>,
    buffers: BTreeMap<u32, Vec<u8>>,
    pub properties: BTreeMap<Vec<String>, Vec<u8>>,
    /// Shared data: value and CAS version.
    pub shared: BTreeMap<String, (Vec<u8>, u32)>,
    cas_counter: u32,
    /// Registered queues by name (index + 1 is the id).
    pub queues: Vec<(String, VecDeque<Vec<u8>>)>,
    pub callouts: Vec<Callout>,
    pub replies: Vec<Reply>,
    /// How many times a filter resumed the request.
    pub resumed: usize,
    pub tick: Option<Duration>,
    /// The clock: time since the Unix epoch.
    pub clock: Duration,
    pub metrics: Vec<Metric>,
    calls: BTreeMap<&'static str, usize>,
}

impl MemoryHost {
    pub fn new() -> Self {
        Self {
            clock: Duration::from_secs(1_700_000_000),
            ..Self::default()
        }
    }

    fn count(&mut self, call: &'static str) {
        *self.calls.entry(call).or_default() += 1;
    }

    /// Host calls made so far, by name.
    pub fn calls(&self) -> &BTreeMap<&'static str, usize> {
        &self.calls
    }

    /// Host calls made so far, all together.
    pub fn total_calls(&self) -> usize {
        self.calls.values().sum()
    }

    pub fn reset_calls(&mut self) {
        self.calls.clear();
    }

    /// Set a whole header map (e.g. the request headers before a request).
    pub fn set_headers(&mut self, map: MapType, headers: &[(&str, &str)]) {
        self.headers.insert(
            map as u32,
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
    }

    pub fn headers(&self, map: MapType) -> &[(String, String)] {
        self.headers.get(&(map as u32)).map_or(&[], Vec::as_slice)
    }

    pub fn header(&self, map: MapType, name: &str) -> Option<&str> {
        self.headers(map)
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_body(&mut self, buffer: BufferType, bytes: &[u8]) {
        self.buffers.insert(buffer as u32, bytes.to_vec());
    }

    pub fn body(&self, buffer: BufferType) -> &[u8] {
        self.buffers
            .get(&(buffer as u32))
            .map_or(&[], Vec::as_slice)
    }

    /// Filter state `wasm.<key>` as a filter set it.
    pub fn filter_state(&self, key: &str) -> Option<&[u8]> {
        self.properties
            .get(&vec![key.to_string()])
            .map(Vec::as_slice)
    }

    /// A metric's value by name (0 when never touched).
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map_or(0, |m| m.value)
    }

    fn metric_mut(&mut self, id: u32) -> Result<&mut Metric, Status> {
        let index = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .ok_or(Status::NotFound)?;
        self.metrics.get_mut(index).ok_or(Status::NotFound)
    }

    fn queue_mut(&mut self, id: u32) -> Result<&mut VecDeque<Vec<u8>>, Status> {
        let index = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .ok_or(Status::NotFound)?;
        self.queues
            .get_mut(index)
            .map(|(_, q)| q)
            .ok_or(Status::NotFound)
    }
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Host for MemoryHost {
    fn header_pairs(&mut self, map: MapType) -> Result<Vec<(Bytes, Bytes)>, Status> {
        self.count("header_pairs");
        Ok(self
            .headers(map)
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect())
    }

    fn header_value(&mut self, map: MapType, name: &str) -> Result<Option<Bytes>, Status> {
        self.count("header_value");
        Ok(self.header(map, name).map(|v| v.as_bytes().to_vec()))
    }

    fn set_header(&mut self, map: MapType, name: &str, value: Option<&str>) -> Result<(), Status> {
        self.count("set_header");
        let headers = self.headers.entry(map as u32).or_default();
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            headers.push((lower(name), value.to_string()));
        }
        Ok(())
    }

    fn add_header(&mut self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        self.count("add_header");
        self.headers
            .entry(map as u32)
            .or_default()
            .push((lower(name), value.to_string()));
        Ok(())
    }

    fn buffer_len(&mut self, buffer: BufferType) -> Result<usize, Status> {
        self.count("buffer_len");
        Ok(self.body(buffer).len())
    }

    fn buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        max: usize,
    ) -> Result<Option<Bytes>, Status> {
        self.count("buffer");
        let Some(bytes) = self.buffers.get(&(buffer as u32)) else {
            return Ok(None);
        };
        let end = start.saturating_add(max).min(bytes.len());
        Ok(Some(bytes.get(start.min(end)..end).unwrap_or(&[]).to_vec()))
    }

    fn set_buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status> {
        self.count("set_buffer");
        let bytes = self.buffers.entry(buffer as u32).or_default();
        let start = start.min(bytes.len());
        let end = start.saturating_add(size).min(bytes.len());
        bytes.splice(start..end, value.iter().copied());
        Ok(())
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Bytes>, Status> {
        self.count("property");
        // Filter state set as `wasm.<key>` reads back as
        // `filter_state` / `wasm.<key>`, as in Envoy.
        let key: Vec<String> = match path {
            ["filter_state", name] => match name.strip_prefix("wasm.") {
                Some(key) => vec![key.to_string()],
                None => vec![path.join(".")],
            },
            _ => path.iter().map(|p| p.to_string()).collect(),
        };
        Ok(self.properties.get(&key).cloned())
    }

    fn set_property(&mut self, path: &[&str], value: Option<&[u8]>) -> Result<(), Status> {
        self.count("set_property");
        let key = path.iter().map(|p| p.to_string()).collect();
        self.properties.insert(key, value.unwrap_or(&[]).to_vec());
        Ok(())
    }

    fn shared_data(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
        self.count("shared_data");
        Ok(match self.shared.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set_shared_data(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), Status> {
        self.count("set_shared_data");
        if let (Some(cas), Some((_, current))) = (cas, self.shared.get(key)) {
            if cas != *current {
                return Err(Status::CasMismatch);
            }
        }
        self.cas_counter = self.cas_counter.wrapping_add(1).max(1);
        self.shared.insert(
            key.to_string(),
            (value.unwrap_or(&[]).to_vec(), self.cas_counter),
        );
        Ok(())
    }

    fn register_queue(&mut self, name: &str) -> Result<u32, Status> {
        self.count("register_queue");
        let index = match self.queues.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.queues.push((name.to_string(), VecDeque::new()));
                self.queues.len() - 1
            }
        };
        u32::try_from(index + 1).map_err(|_| Status::InternalFailure)
    }

    fn resolve_queue(&mut self, _vm_id: &str, name: &str) -> Result<Option<u32>, Status> {
        self.count("resolve_queue");
        Ok(self
            .queues
            .iter()
            .position(|(n, _)| n == name)
            .and_then(|i| u32::try_from(i + 1).ok()))
    }

    fn enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), Status> {
        self.count("enqueue");
        self.queue_mut(queue)?.push_back(value.to_vec());
        Ok(())
    }

    fn dequeue(&mut self, queue: u32) -> Result<Option<Bytes>, Status> {
        self.count("dequeue");
        Ok(self.queue_mut(queue)?.pop_front())
    }

    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status> {
        self.count("dispatch_http_call");
        let token = u32::try_from(self.callouts.len() + 1).map_err(|_| Status::InternalFailure)?;
        self.callouts.push(Callout {
            token,
            upstream: upstream.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.unwrap_or(&[]).to_vec(),
            timeout,
        });
        Ok(token)
    }

    fn send_reply(
        &mut self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status> {
        self.count("send_reply");
        self.replies.push(Reply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn resume_request(&mut self) -> Result<(), Status> {
        self.count("resume_request");
        self.resumed += 1;
        Ok(())
    }

    fn set_tick_period(&mut self, period: Duration) -> Result<(), Status> {
        self.count("set_tick_period");
        self.tick = Some(period);
        Ok(())
    }

    fn now(&mut self) -> Result<SystemTime, Status> {
        self.count("now");
        Ok(UNIX_EPOCH + self.clock)
    }

    fn define_metric(&mut self, kind: MetricType, name: &str) -> Result<u32, Status> {
        self.count("define_metric");
        let index = match self.metrics.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                self.metrics.push(Metric {
                    kind,
                    name: name.to_string(),
                    value: 0,
                });
                self.metrics.len() - 1
            }
        };
        u32::try_from(index + 1).map_err(|_| Status::InternalFailure)
    }

    fn increment_metric(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        self.count("increment_metric");
        let metric = self.metric_mut(id)?;
        metric.value = metric.value.saturating_add(offset);
        Ok(())
    }

    fn record_metric(&mut self, id: u32, value: u64) -> Result<(), Status> {
        self.count("record_metric");
        self.metric_mut(id)?.value = i64::try_from(value).unwrap_or(i64::MAX);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_refuses_a_stale_cas() {
        let mut h = MemoryHost::new();
        h.set_shared_data("k", Some(b"1"), None).unwrap();
        let (_, cas) = h.shared_data("k").unwrap();
        h.set_shared_data("k", Some(b"2"), cas).unwrap();
        assert_eq!(
            h.set_shared_data("k", Some(b"3"), cas),
            Err(Status::CasMismatch)
        );
        assert_eq!(h.shared_data("k").unwrap().0.as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn filter_state_reads_back_under_its_envoy_name() {
        let mut h = MemoryHost::new();
        h.set_property(&["gw_identity"], Some(b"{}")).unwrap();
        assert_eq!(
            h.property(&["filter_state", "wasm.gw_identity"]).unwrap(),
            Some(b"{}".to_vec())
        );
        assert_eq!(h.calls().get("property"), Some(&1));
        assert_eq!(h.total_calls(), 2);
    }

    #[test]
    fn buffers_are_replaced_in_place() {
        let mut h = MemoryHost::new();
        h.set_body(BufferType::HttpRequestBody, b"hello world");
        h.set_buffer(BufferType::HttpRequestBody, 0, 5, b"bye")
            .unwrap();
        assert_eq!(h.body(BufferType::HttpRequestBody), b"bye world");
        assert_eq!(
            h.buffer(BufferType::HttpRequestBody, 4, 100).unwrap(),
            Some(b"world".to_vec())
        );
    }

    #[test]
    fn queues_and_metrics() {
        let mut h = MemoryHost::new();
        let q = h.register_queue("q").unwrap();
        assert_eq!(h.resolve_queue("vm", "q").unwrap(), Some(q));
        h.enqueue(q, b"a").unwrap();
        assert_eq!(h.dequeue(q).unwrap(), Some(b"a".to_vec()));
        assert_eq!(h.dequeue(q).unwrap(), None);
        let m = h.define_metric(MetricType::Counter, "c").unwrap();
        h.increment_metric(m, 2).unwrap();
        assert_eq!(h.metric("c"), 2);
    }
}
