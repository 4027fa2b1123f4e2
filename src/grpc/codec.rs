//! InviteService's protobuf codec: prost's own (`tonic_prost::ProstCodec`),
//! except that bytes which do not decode are the caller's mistake, answered
//! INVALID_ARGUMENT, not INTERNAL with the decoder's words in the message.
//!
//! Implementation notes: tonic-prost-build takes one codec path for server
//! and client, so the generated client reads answers with it too; our server
//! never sends an undecodable one.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, DecodeBuf},
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Named by `codec_path` in build.rs; the generated code makes one per call.
#[derive(Debug, Clone, Default)]
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(PhantomData)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Decoder<U>(PhantomData<U>);

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    /// Decodes as `ProstDecoder` does, keeping the error typed: prost's
    /// decoder turns it into a Status with the decoder text at once.
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|err| Undecodable(err).into())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Bytes that are not the method's message: a string that is not UTF-8,
/// nesting past prost's limit of 100 messages, or no protobuf at all.
#[derive(Debug, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct Undecodable(pub prost::DecodeError);
