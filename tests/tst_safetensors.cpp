// safetensors reading and writing, checked against files built byte by byte in the test,
// and every kind of malformed file refused with a clear message (run under ASan in CI).
#include "cs/error.h"
#include "cs/files.h"
#include "cs/safetensors.h"

#include <ATen/ATen.h>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

using cs::io::SafetensorsFile;

namespace {

// A safetensors file from a header text and raw data bytes, exactly as given.
std::string rawFile(const std::string& header, const std::string& data, uint64_t claimedLen = UINT64_MAX)
{
    uint64_t len = claimedLen == UINT64_MAX ? header.size() : claimedLen;
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i)
        out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
    return out + header + data;
}

std::string floatsLE(std::initializer_list<float> values)
{
    std::string out;
    for (float v : values) {
        char b[4];
        std::memcpy(b, &v, 4); // x86-64 and the format are little-endian
        out.append(b, 4);
    }
    return out;
}

} // namespace

class TestSafetensors : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;

    std::string write(const std::string& name, const std::string& bytes)
    {
        const std::string path = m_dir.filePath(QString::fromStdString(name)).toStdString();
        std::ofstream(path, std::ios::binary) << bytes;
        return path;
    }

private Q_SLOTS:
    // cs::removeTree (not std::filesystem::remove_all, see cs/files.h): a tree goes, a link in
    // it goes without what it points to, a missing path is no error, a file is removed.
    void removeTree()
    {
        namespace fs = std::filesystem;
        QTemporaryDir dir;
        const fs::path root = fs::path(dir.path().toStdString()) / "tree";
        fs::create_directories(root / "a" / "b");
        std::ofstream(root / "a" / "b" / "f.bin") << "x";
        std::ofstream(root / "g.txt") << "y";
        const fs::path outside = fs::path(dir.path().toStdString()) / "keep.txt";
        std::ofstream(outside) << "keep";
        fs::create_symlink(outside, root / "a" / "link");
        fs::create_directory_symlink(fs::path(dir.path().toStdString()), root / "loop");
        std::string error;
        QVERIFY2(cs::removeTree(root.string(), &error), error.c_str());
        QVERIFY(!fs::exists(root));
        QVERIFY(fs::exists(outside));
        QVERIFY(cs::removeTree((root / "missing").string(), &error));
        QVERIFY(cs::removeTree(outside.string(), &error));
        QVERIFY(!fs::exists(outside));
    }

    void readsHandBuiltFile()
    {
        // Two tensors; "b" is stored first in the data to check offsets are honoured.
        const std::string header = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},)"
                                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("__metadata__":{"format":"pt"}})";
        const std::string path = write("hand.safetensors", rawFile(header, floatsLE({ 9, 8, 1, 2, 3, 4 })));
        auto file = SafetensorsFile::open(path);
        QCOMPARE(file->tensors().size(), size_t(2));
        QCOMPARE(file->metadata().at("format"), std::string("pt"));
        at::Tensor a = file->tensor("a");
        QCOMPARE(a.sizes().vec(), (std::vector<int64_t> { 2, 2 }));
        QVERIFY(at::equal(a, at::tensor({ 1.f, 2.f, 3.f, 4.f }).view({ 2, 2 })));
        QVERIFY(at::equal(file->tensor("b"), at::tensor({ 9.f, 8.f })));
        QVERIFY(!file->contains("c"));
    }

    void roundTripsEveryDtype_data()
    {
        QTest::addColumn<int>("scalarType");
        QTest::newRow("f32") << int(at::kFloat);
        QTest::newRow("f16") << int(at::kHalf);
        QTest::newRow("bf16") << int(at::kBFloat16);
        QTest::newRow("f64") << int(at::kDouble);
        QTest::newRow("i64") << int(at::kLong);
        QTest::newRow("u8") << int(at::kByte);
    }
    void roundTripsEveryDtype()
    {
        QFETCH(int, scalarType);
        const auto type = static_cast<at::ScalarType>(scalarType);
        at::manual_seed(3);
        at::Tensor t = (at::randn({ 3, 5, 7 }) * 10).to(type);
        at::Tensor scalar = at::scalar_tensor(42.f).to(type); // rank 0
        at::Tensor empty = at::zeros({ 0, 4 }, type);
        cs::io::SafetensorsWriter w;
        w.add("t", t);
        w.add("scalar", scalar);
        w.add("empty", empty);
        w.add("odd", at::arange(3, at::kByte)); // 3 bytes: the next tensor starts unaligned
        w.setMetadata("k", "v");
        const std::string path = m_dir.filePath("rt.safetensors").toStdString();
        w.write(path);
        auto file = SafetensorsFile::open(path);
        QVERIFY(at::equal(file->tensor("t"), t));
        QCOMPARE(file->tensor("scalar").dim(), int64_t(0));
        QVERIFY(at::equal(file->tensor("scalar"), scalar));
        QCOMPARE(file->tensor("empty").sizes().vec(), (std::vector<int64_t> { 0, 4 }));
        QCOMPARE(file->metadata().at("k"), std::string("v"));
        // The header names the dtype as the format spells it.
        QCOMPARE(std::string(cs::io::dtypeName(file->find("t")->dtype)),
            std::string(cs::io::dtypeName(cs::io::fromScalarType(type))));
    }

    void tensorsOutliveTheFileObject()
    {
        cs::io::SafetensorsWriter w;
        w.add("x", at::arange(10, at::kFloat));
        const std::string path = m_dir.filePath("life.safetensors").toStdString();
        w.write(path);
        at::Tensor x;
        {
            auto file = SafetensorsFile::open(path);
            x = file->tensor("x");
        }
        QCOMPARE(x.sum().item<float>(), 45.f);
        x.mul_(2); // copy-on-write mapping: the file is not changed
        QCOMPARE(SafetensorsFile::open(path)->tensor("x").sum().item<float>(), 45.f);
    }

    void failedWriteKeepsTheOldFile()
    {
        const std::string path = m_dir.filePath("keep.safetensors").toStdString();
        cs::io::SafetensorsWriter good;
        good.add("x", at::ones({ 4 }));
        good.write(path);
        cs::io::SafetensorsWriter bad;
        bad.add("x", at::ones({ 4 }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, bad.add("x", at::ones({ 2 }))); // duplicate name
        QVERIFY_THROWS_EXCEPTION(cs::Error, bad.write(m_dir.filePath("no/such/dir/f.safetensors").toStdString()));
        QVERIFY(at::equal(SafetensorsFile::open(path)->tensor("x"), at::ones({ 4 })));
        QCOMPARE(QDir(m_dir.path()).entryList({ "*.tmp-*" }).size(), 0);
    }

    // A writer killed mid-write leaves its temporary sibling (no destructor runs); the next
    // commit to that path removes the ones whose flock no process holds, and no other file.
    // tst_crash_consistency does the same with real SIGKILLs.
    void commitRemovesDeadWritersTemporaries()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath("f.json");
        const auto make = [&](const QString& name) {
            QFile f(dir.filePath(name));
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("partial");
        };
        make("f.json.tmp-Dead01"); // a killed writer's
        make("f.json.tmp-Live01"); // a live writer's: locked below
        make("f.json.tmp-toolong"); // not mkstemp's six characters: not ours
        make("g.json.tmp-Other1"); // another target's
        const int live = ::open(QFile::encodeName(dir.filePath("f.json.tmp-Live01")).constData(), O_RDONLY);
        QVERIFY(live >= 0);
        QCOMPARE(::flock(live, LOCK_EX | LOCK_NB), 0);
        cs::writeFileAtomically(path.toStdString(), "{}\n");
        QStringList left = QDir(dir.path()).entryList(QDir::Files, QDir::Name);
        QCOMPARE(left, QStringList({ "f.json", "f.json.tmp-Live01", "f.json.tmp-toolong", "g.json.tmp-Other1" }));
        ::close(live); // the live writer dies: its file goes with the next commit
        cs::writeFileAtomically(path.toStdString(), "{}\n");
        left = QDir(dir.path()).entryList(QDir::Files, QDir::Name);
        QCOMPARE(left, QStringList({ "f.json", "f.json.tmp-toolong", "g.json.tmp-Other1" }));
    }

    void refusesMalformedFiles_data()
    {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<QString>("phrase"); // a part of the message a user would read
        const std::string okHeader = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
        const std::string okData = floatsLE({ 1, 2 });
        auto row = [](const char* name, const std::string& bytes, const char* phrase) {
            QTest::newRow(name) << QByteArray(bytes.data(), int(bytes.size())) << QString(phrase);
        };
        row("empty file", "", "shorter than the 8-byte header length");
        row("five bytes", "abcde", "shorter than the 8-byte header length");
        const std::string full = rawFile(okHeader, okData);
        row("truncated data", full.substr(0, full.size() - 3), "run past the end of the data");
        row("truncated header", full.substr(0, 20), "truncated");
        row("header length past end", rawFile(okHeader, okData, okHeader.size() + 100), "only");
        row("header claims 2^60", rawFile(okHeader, okData, uint64_t(1) << 60), "100 MB limit");
        row("not json", rawFile("{this is not json}", okData), "not JSON");
        row("json array", rawFile("[1,2,3]", okData), "does not start with '{'");
        // What the format requires (issue 23): the header's JSON padded only with spaces (0x20), the
        // data tiled exactly by the tensors, every name once.
        row("NUL padding after the header", rawFile(okHeader + std::string(4, '\0'), okData), "NUL byte at offset");
        row("newline after the header", rawFile(okHeader + "\n", okData), "other than spaces (0x20)");
        row("header length one byte short", rawFile(okHeader + "        ", okData, okHeader.size() + 7),
            "1 byte follows the last tensor's data");
        row("trailing bytes", rawFile(okHeader, okData + "tail"), "4 bytes follow the last tensor's data");
        row("hole between tensors",
            rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
                    R"("c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                floatsLE({ 1, 2, 3 })),
            "the data bytes [4, 8) before tensor \"c\" belong to no tensor");
        row("duplicated tensor key",
            rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                okData),
            "names \"a\" twice");
        row("unknown dtype", rawFile(R"({"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", okData),
            "unsupported tensor dtype");
        row("shape x dtype mismatch", rawFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", okData),
            "shape and dtype need");
        row("offsets past data", rawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", okData),
            "run past the end");
        row("offsets reversed", rawFile(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", okData),
            "begin after they end");
        row("overlapping tensors",
            rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                okData),
            "overlap");
        row("negative dim", rawFile(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", okData),
            "non-negative integer");
        row("element count overflow",
            rawFile(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", okData),
            "overflows");
        row("huge dims product",
            rawFile(R"({"a":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,8]}})", okData),
            "shape and dtype need");
        // Issue 21: sizes a header declares are checked against the file before any allocation.
        row("shape [2^40, 2^40]",
            rawFile(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})", okData),
            "the shape's element count overflows");
        row("4 TiB declared, 8 bytes there",
            rawFile(R"({"a":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}})", okData),
            "data_offsets [0, 4398046511104) run past the end of the data (8 bytes");
        row("missing offsets", rawFile(R"({"a":{"dtype":"F32","shape":[2]}})", okData), "needs dtype, shape");
        row("bad offsets", rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", okData),
            "not [begin, end]");
        row("metadata not strings", rawFile(R"({"__metadata__":{"a":1}})", ""), "is not a string");
    }
    void refusesMalformedFiles()
    {
        QFETCH(QByteArray, bytes);
        QFETCH(QString, phrase);
        const std::string path = write("bad.safetensors", std::string(bytes.constData(), size_t(bytes.size())));
        try {
            auto file = SafetensorsFile::open(path);
            QFAIL("a malformed file was accepted");
        } catch (const cs::Error& e) {
            const QString message = QString::fromUtf8(e.what());
            QVERIFY2(message.contains(phrase), qPrintable(message));
            QVERIFY2(message.contains("bad.safetensors"), "the message names the file");
        }
    }

    // Every atomic write (cs::writeFileAtomically, SafetensorsWriter: graphs, exports, stores,
    // transcoder and model folders) renames a temporary file over its target; over a device node
    // or a FIFO that would replace it with a file (issue 23: `graph export --out /dev/full` as
    // root). A target that is there and not a regular file is refused before anything is written.
    void atomicWritesRefuseNonRegularTargets_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("phrase");
        QTest::newRow("FIFO") << "fifo"
                              << "(a FIFO)";
        QTest::newRow("folder") << "folder"
                                << "(a folder)";
        QTest::newRow("socket") << "socket"
                                << "(a socket)";
        QTest::newRow("link to a FIFO") << "link"
                                        << "(a FIFO)";
        QTest::newRow("device made here (root only)") << "device"
                                                      << "(a device)";
        QTest::newRow("/dev/full (root only)") << "devfull"
                                               << "(a device)";
    }
    void atomicWritesRefuseNonRegularTargets()
    {
        QFETCH(QString, kind);
        QFETCH(QString, phrase);
        QTemporaryDir dir;
        std::string path = dir.filePath("target").toStdString();
        if (kind == "fifo" || kind == "link") {
            QCOMPARE(::mkfifo(path.c_str(), 0600), 0);
            if (kind == "link") {
                const std::string link = dir.filePath("link").toStdString();
                QCOMPARE(::symlink(path.c_str(), link.c_str()), 0);
                path = link;
            }
        } else if (kind == "folder") {
            QVERIFY(QDir().mkdir(QString::fromStdString(path)));
        } else if (kind == "socket") {
            const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            sockaddr_un addr {};
            addr.sun_family = AF_UNIX;
            QVERIFY(path.size() < sizeof addr.sun_path);
            std::strcpy(addr.sun_path, path.c_str());
            QCOMPARE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
            ::close(fd);
        } else if (::geteuid() != 0) {
            QSKIP("making or writing a device node needs root");
        } else if (kind == "device") {
            // A node of /dev/full's kind (char 1:7) of our own, refused first, so /dev/full below
            // is tried only once the check is known to hold.
            QCOMPARE(::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 7)), 0);
        } else {
            path = "/dev/full";
            const std::string own = dir.filePath("probe").toStdString();
            QCOMPARE(::mknod(own.c_str(), S_IFCHR | 0666, makedev(1, 7)), 0);
            QVERIFY_THROWS_EXCEPTION(cs::Error, cs::writeFileAtomically(own, "{}"));
        }
        struct stat before { };
        QCOMPARE(::stat(path.c_str(), &before), 0);

        cs::io::SafetensorsWriter writer;
        writer.add("x", at::ones({ 2 }));
        for (int which = 0; which < 2; ++which) {
            try {
                if (which == 0)
                    cs::writeFileAtomically(path, "{}\n");
                else
                    writer.write(path);
                QFAIL(qPrintable("wrote over " + kind));
            } catch (const cs::Error& e) {
                const QString message = QString::fromUtf8(e.what());
                QVERIFY2(message.contains(QString::fromStdString(path)) && message.contains(phrase)
                        && message.contains("not a regular file"),
                    qPrintable(message));
            }
        }
        struct stat after { };
        QCOMPARE(::stat(path.c_str(), &after), 0);
        QCOMPARE(after.st_mode, before.st_mode); // still what it was
        QCOMPARE(after.st_ino, before.st_ino);
        // Nothing left behind: no temporary sibling.
        QCOMPARE(QDir(dir.path()).entryList({ "*.tmp-*" }).size(), 0);
        QCOMPARE(QDir("/dev").entryList({ "full.tmp-*" }, QDir::System | QDir::Files).size(), 0);
    }

    // requireFinite reads a tensor in slices (a tensor of many GiB is never converted whole):
    // every bad value counts, in any slice, the last one's partial tail too.
    void requireFiniteCountsEverySlice()
    {
        const int64_t n = (int64_t(1) << 23) + 5; // two whole slices of 2^22 and a tail
        at::Tensor t = at::zeros({ n }, at::kHalf);
        cs::io::requireFinite(t, "zeros", "t");
        t[3] = std::nanf("");
        t[(int64_t(1) << 22) + 1] = INFINITY;
        t[n - 1] = -INFINITY;
        try {
            cs::io::requireFinite(t.view({ n }), "file.safetensors", "t");
            QFAIL("non-finite values were accepted");
        } catch (const cs::Error& e) {
            QVERIFY2(QString(e.what()).startsWith("file.safetensors: tensor \"t\" holds 3 NaN or infinite values (of "
                         + QString::number(n) + ")"),
                e.what());
        }
    }

    // The format allows spaces (0x20) after the header's JSON; our own writer pads with them.
    void acceptsSpacePadding()
    {
        const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
        const std::string path = write("padded.safetensors", rawFile(header + "     ", floatsLE({ 1, 2 })));
        QCOMPARE(SafetensorsFile::open(path)->tensor("a")[1].item<float>(), 2.f);
    }

    void refusesMissingFileAndFolder()
    {
        QVERIFY_THROWS_EXCEPTION(cs::Error, SafetensorsFile::open(m_dir.filePath("none.safetensors").toStdString()));
        QVERIFY_THROWS_EXCEPTION(cs::Error, SafetensorsFile::open(m_dir.path().toStdString()));
    }

    void checkpointReadsShards()
    {
        QDir dir(m_dir.path());
        dir.mkdir("sharded");
        const std::string folder = m_dir.filePath("sharded").toStdString();
        cs::io::SafetensorsWriter a, b;
        a.add("w1", at::ones({ 2 }));
        b.add("w2", at::full({ 3 }, 2.f));
        a.write(folder + "/model-00001-of-00002.safetensors");
        b.write(folder + "/model-00002-of-00002.safetensors");
        std::ofstream(folder + "/model.safetensors.index.json")
            << R"({"metadata":{"total_size":20},"weight_map":{"w1":"model-00001-of-00002.safetensors",)"
               R"("w2":"model-00002-of-00002.safetensors"}})";
        auto ckpt = cs::io::Checkpoint::open(folder);
        QCOMPARE(ckpt.names().size(), size_t(2));
        QCOMPARE(ckpt.tensor("w2").sum().item<float>(), 6.f);
        QVERIFY_THROWS_EXCEPTION(cs::Error, ckpt.tensor("w3"));

        std::ofstream(folder + "/model.safetensors.index.json")
            << R"({"weight_map":{"w1":"model-00009-of-00002.safetensors"}})";
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::io::Checkpoint::open(folder));
        std::ofstream(folder + "/model.safetensors.index.json") << R"({"weight_map":{"w1":"../../etc/passwd"}})";
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::io::Checkpoint::open(folder));
    }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "tst_safetensors.moc"
