//! One HTTP range fetch: a `Range` GET to an edge or the origin, streamed into memory
//! with progress events (a chunk is at most one piece or 32 MiB).

use http_body_util::BodyExt as _;
use swarmdrop_httpc::{get_pooled_in, HttpUrl, Lane, Timeouts};
use swarmdrop_plan::FetchId;

use crate::{Event, Events};

/// One range GET, streamed into memory (a chunk is at most one piece or 32 MiB).
pub(super) async fn fetch_range(
    (url, timeouts, lane): (HttpUrl, Timeouts, Lane),
    auth: Option<String>,
    (offset, length, total): (u64, u64, u64),
    (fetch, urgency): (FetchId, u8),
    events: Events,
) {
    let range = format!("bytes={}-{}", offset, offset + length.max(1) - 1);
    // RFC 9218: an edge that paces its upload sends the most urgent ranges first.
    let priority = format!("u={urgency}");
    let mut headers: Vec<(&str, &str)> = vec![("range", &range), ("priority", &priority)];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    let fail = |why: String| {
        let _ = events.send(Event::Failed(fetch, why));
    };
    let response = match get_pooled_in(lane, &url, &headers, timeouts).await {
        Ok(response) => response,
        Err(e) => return fail(e.to_string()),
    };
    let status = response.status().as_u16();
    let whole = offset == 0 && length == total;
    if status != 206 && !(status == 200 && whole) {
        return fail(format!("{url}: HTTP {status}"));
    }
    let mut body = response.into_body();
    let mut bytes = Vec::with_capacity(length as usize);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return fail(format!("{url}: {e}")),
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > length as usize {
                return fail(format!("{url}: more bytes than the {length} asked for"));
            }
            bytes.extend_from_slice(&data);
            let _ = events.send(Event::Progress(fetch, data.len() as u64));
        }
    }
    let _ = events.send(Event::Done(fetch, bytes));
}
