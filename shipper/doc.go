// Package shipper uploads the completed blocks of one TSDB directory to object storage, in the layout
// Thanos Store, Query and Compactor read: every block under "<ULID>/" in the bucket, its files first
// (chunks/…, index) and its meta.json last, that meta.json carrying the TSDB fields plus a "thanos" section
// (external labels, downsample resolution 0, source "receive", the list of files with their sizes).
//
// Start with [New] and [Shipper.Sync]. The shipper knows nothing about tenants, rings or the TSDB's life
// cycle: the caller creates one Shipper per TSDB directory, calls Sync periodically (and once more after
// flushing the head on shutdown), and feeds [Shipper.Uploaded] into tsdb.Options.BlocksToDelete so that
// local retention never deletes a block that is not in the bucket yet.
//
// # What is shipped
//
// A block directory of Config.Dir is a candidate when its name is a ULID and it holds a meta.json
// (directories ending in .tmp-for-creation or .tmp-for-deletion are not ULIDs and are never looked at).
// Like Thanos Receive (which builds its shipper with uploadCompacted=false), the shipper skips:
//   - blocks with compaction level > 1: Weir runs the TSDB with min = max block duration, so it never
//     compacts locally; a level > 1 block would hold data of level-1 blocks already shipped, and shipping
//     it again would create overlaps a Thanos Compactor halts on;
//   - blocks without samples (meta.json stats.numSamples == 0).
//
// Skipped blocks are neither pending nor uploaded.
//
// Candidates are shipped oldest first (by minTime, then ULID). A failed upload stops the Sync and is
// returned; the next Sync starts with the same block again, so blocks reach the bucket in order and none
// is skipped.
//
// # One block's upload
//
//  1. The block's files are hard-linked (copied where linking fails) into Dir/thanos/upload/<ULID>, so a
//     TSDB retention or compaction deleting the block cannot pull files out from under the upload.
//  2. Every chunk segment (chunks/000001, …) and index is uploaded, then tombstones when the block has
//     tombstones (stats.numTombstones > 0; Thanos never uploads tombstones, and the TSDB opens a block
//     without a tombstones file as having none, so an empty tombstones file is not shipped either).
//  3. meta.json is uploaded last: a reader treats a "<ULID>/" without meta.json as an upload in progress.
//  4. The ULID is recorded in Dir/thanos.shipper.json (see below) and the staging directory is removed.
//
// Objects left by a failed upload are overwritten by the retry; a block whose meta.json is already in the
// bucket (a crash between step 3 and step 4) is recorded as uploaded without uploading anything.
//
// # State file
//
// Dir/thanos.shipper.json is the file Thanos Receive keeps in a tenant directory, with the same format:
//
//	{"version": 1, "uploaded": ["01J…", …]}
//
// It is rewritten atomically (temporary file, fsync, rename, fsync of the directory) after every uploaded
// block, and lists the uploaded blocks that still exist locally. A missing, unreadable, corrupted or
// unknown-version file is not an error: the shipper starts from an empty list, asks the bucket whether
// "<ULID>/meta.json" exists for each local block (the only blocks it needs to know about — the bucket is
// shared by all tenants, so listing it would cost far more), and rewrites the file.
//
// # Metrics
//
// All metrics are registered with the Registerer passed to New (the caller adds a tenant label):
// weir_shipper_uploads_total, weir_shipper_upload_failures_total, weir_shipper_uploaded_bytes_total,
// weir_shipper_last_success_timestamp_seconds (last successful block upload),
// weir_shipper_blocks_pending and weir_shipper_oldest_unshipped_block_age_seconds (both refreshed by every
// Sync; the age is measured from the block's creation time, the time in its ULID).
package shipper
