module github.com/mnet-project/mnet

go 1.26.0

require (
	github.com/google/gopacket v1.1.19
	github.com/hanwen/go-fuse/v2 v2.12.1
	golang.org/x/sys v0.49.0
)

require golang.org/x/net v0.0.0-20190620200207-3b0461eec859 // indirect

// go-fuse v2.12.1 (h1:b6NXOPCraS9NvN4vtHZXDN1nsNKdoDlyafWxWnuO30Q=) plus
// FUSE_POLL: third_party/go-fuse is that module with
// third_party/go-fuse-patches/*.patch applied, made and checked by
// third_party/go-fuse.sh. The versioned left side makes a bump of the
// require above stop matching, so it cannot silently drop the patches.
replace github.com/hanwen/go-fuse/v2 v2.12.1 => ./third_party/go-fuse
