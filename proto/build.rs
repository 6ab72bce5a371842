fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc: a fresh machine needs nothing but cargo.
    // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    println!("cargo:rerun-if-changed=proto/cairn.proto");
    tonic_prost_build::configure()
        // Body bytes are `bytes::Bytes`: sliced and passed along without copying.
        .bytes(".cairn.v1.PutBlockChunk.data")
        .bytes(".cairn.v1.BlockData.data")
        .bytes(".cairn.v1.ObjectRecord.inline_data")
        .btree_map(".cairn.v1.ObjectRecord.user_metadata")
        .btree_map(".cairn.v1.ObjectRecord.headers")
        .btree_map(".cairn.v1.ObjectRecord.tags")
        .btree_map(".cairn.v1.SetTagsRequest.tags")
        .compile_protos(&["proto/cairn.proto"], &["proto"])?;
    Ok(())
}
