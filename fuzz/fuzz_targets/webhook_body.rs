//! The body of `POST /webhook/{token}`: untrusted bytes from anyone who knows
//! the URL. Parsing must never panic, whatever arrives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // What the webhook handler does first: is it JSON at all?
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // The page id a payload names, as the handler reads it.
    let _ = value
        .get("page")
        .and_then(|p| p.get("id"))
        .and_then(serde_json::Value::as_str);
    // TODO(serve): once `statusmotd serve` lands on main, call the webhook
    // parsing function it exposes here, e.g. `statusmotd::server::...(data)`.
});
