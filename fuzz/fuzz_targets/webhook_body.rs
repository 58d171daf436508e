//! The body of `POST /webhook/{token}`: untrusted bytes from anyone who knows
//! the URL. Parsing must never panic, whatever arrives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // What the webhook handler does first: is it JSON at all?
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // The page id a payload names, as the webhook handler reads it: any
    // JSON at all gives a page id or none, never a panic.
    if let Some(page) = statusmotd::serve::webhook_page_id(&value) {
        assert!(!page.is_empty());
    }
});
