//! The page's reply body: a whole text, or a stream of server-sent events.
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc::Receiver;

pub enum UiBody {
    Full(Option<Bytes>),
    Events(Receiver<Bytes>),
}

impl UiBody {
    pub fn full(s: String) -> UiBody {
        UiBody::Full(Some(Bytes::from(s)))
    }
}

impl Body for UiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            UiBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UiBody::Events(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, UiBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UiBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            UiBody::Full(None) => SizeHint::with_exact(0),
            UiBody::Events(_) => SizeHint::default(),
        }
    }
}
