/* object_size_test: prints what one connection costs the agent in fixed objects and checks
 * that each still fits the slab slot it is allocated from: an HBONE connection 2 KiB, and a
 * stream (the tunnelled connection's object on either node, whose access record names its
 * ends by pointers to interned text and packed addresses, and which keeps its request's
 * :authority and its error text apart, only while it needs them) 512 bytes. Upstream asserts its
 * own connection state at 1.5-2.5 KB. */
#include <stdio.h>

#include "../../agent/hbone/hbone-int.h"

#include "check.h"

int main(void)
{
	printf("object sizes: hbone stream (one tunnelled connection) %zu bytes, of which access "
	       "record %zu (addresses %zu), app socket %zu; hbone connection (shared by up to 100 "
	       "streams) %zu; buffered byte queue %zu\n", sizeof(struct hbone_stream),
	       sizeof(struct access_record), 3 * sizeof(struct io_addr), sizeof(struct io_sock),
	       sizeof(struct hbone_conn), sizeof(struct io_bufq));
	CHECK(sizeof(struct hbone_stream) <= 512, "a stream no longer fits its 512-byte slot");
	CHECK(sizeof(struct hbone_conn) <= 2048, "an HBONE connection no longer fits 2 KiB");
	printf("%s\n", failures ? "FAILED" : "object_size_test: ok");
	return failures ? 1 : 0;
}
