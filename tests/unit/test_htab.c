/* test_htab -- the hash map against a model: inserts, replaces, deletes, growth, sorted keys. */
#include "t.h"
#include "htab.h"

int
main(void)
{
	htab h;
	htab_init(&h);
	enum { N = 20000 };
	static uintptr_t model[N];
	uint64_t s = 42;
	for (int round = 0; round < 200000; round++) {
		uint64_t k = t_rand(&s) % N;
		int op = (int)(t_rand(&s) % 3);
		if (op < 2) {
			uintptr_t val = (uintptr_t)(t_rand(&s) | 1);
			void *old = htab_put(&h, k * 7919, (void *)val);
			CHECK((uintptr_t)old == model[k]);
			model[k] = val;
		} else {
			void *old = htab_del(&h, k * 7919);
			CHECK((uintptr_t)old == model[k]);
			model[k] = 0;
		}
	}
	size_t live = 0;
	for (int k = 0; k < N; k++) {
		CHECK((uintptr_t)htab_get(&h, (uint64_t)k * 7919) == model[k]);
		live += model[k] != 0;
	}
	CHECK(h.count == live);
	size_t n;
	uint64_t *keys = htab_sorted_keys(&h, &n);
	CHECK(n == live);
	for (size_t i = 1; i < n; i++)
		CHECK(keys[i - 1] < keys[i]);
	free(keys);
	CHECK(htab_get(&h, 0xdeadbeefull) == NULL);
	/* clear keeps the table and empties the map */
	size_t cap = h.cap;
	htab_clear(&h);
	CHECK(h.count == 0 && h.cap == cap);
	CHECK(htab_get(&h, 7919) == NULL);
	CHECK(htab_put(&h, 7919, (void *)1) == NULL && htab_get(&h, 7919) == (void *)1);
	htab_fini(&h);
	printf("ok\n");
	return 0;
}
