// The feature store (cs::features::FeatureStore, SQLite): the input is the database file. It is
// opened read-only as the explorer does, and every read a card needs is made: the store's info,
// the feature list, each listed feature's card and totals (the first 64), co-activations when
// the store says it has them, the vocabulary and a label search; then the file as a part of a
// distributed build.
#include "fuzz_common.h"

#include <cs/features.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    // SQLite keeps a -wal and -shm file beside a WAL database; a stale one from the last input
    // would be read with this one.
    const std::string path = cs::fuzz::scratchDir() + "/store.db";
    std::error_code ec;
    std::filesystem::remove(path + "-wal", ec);
    std::filesystem::remove(path + "-shm", ec);
    cs::fuzz::writeScratch("store.db", data, size);
    try {
        const auto store = cs::features::FeatureStore::open(path);
        (void)store->info();
        (void)store->count();
        (void)store->search("a", 8);
        const bool coactivations = store->hasCoactivations();
        int64_t n = 0;
        const std::vector<std::string> vocabulary = store->vocabulary();
        for (const auto& [layer, feature] : store->listFeatures()) {
            if (++n > 64)
                break;
            (void)store->has(layer, feature);
            (void)store->totals(layer, feature);
            (void)cs::features::circuitTracerJson(store->card(layer, feature), vocabulary).dump();
            if (coactivations) {
                (void)store->coactivations(layer, feature, true);
                (void)store->coactivations(layer, feature, false);
            }
        }
        (void)store->card(0, 0);
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
    }
    try { // as `features merge` and `features info` read a part of a distributed build
        (void)cs::features::readPart(path);
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
    }
    return 0;
}
