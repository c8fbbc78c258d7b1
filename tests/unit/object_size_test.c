/* object_size_test: prints what one connection costs the agent in fixed objects and checks
 * that each still fits the slab slot it is allocated from (2 KiB for an HBONE connection, 4 KiB
 * for a stream: the tunnelled connection's object on either node). Upstream asserts its own
 * connection state at 1.5-2.5 KB. */
#include <stdio.h>

#include "../../agent/hbone/hbone-int.h"

#include "check.h"

int main(void)
{
	printf("object sizes: hbone stream (one tunnelled connection) %zu bytes, of which access "
	       "record %zu, app socket %zu; hbone connection (shared by up to 100 streams) %zu; "
	       "buffered byte queue %zu\n", sizeof(struct hbone_stream),
	       sizeof(struct access_record), sizeof(struct io_sock), sizeof(struct hbone_conn),
	       sizeof(struct io_bufq));
	CHECK(sizeof(struct hbone_stream) <= 4096, "a stream no longer fits its 4 KiB slot");
	CHECK(sizeof(struct hbone_conn) <= 2048, "an HBONE connection no longer fits 2 KiB");
	printf("%s\n", failures ? "FAILED" : "object_size_test: ok");
	return failures ? 1 : 0;
}
