// Tests of util/file: whole-file reads, read-only maps, and the atomic writer's all-or-nothing promise.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "util/error.h"
#include "util/file.h"

namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "fme_util_XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  size_t count() const { return static_cast<size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

void put(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

TEST(ReadFile, ReturnsTheBytes) {
  TempDir d;
  std::string content("a\0b\nc", 5);
  put(d / "f", content);
  EXPECT_EQ(fme::read_file(d / "f"), content);
}

TEST(ReadFile, MissingFileNamesThePath) {
  TempDir d;
  try {
    fme::read_file(d / "nope");
    FAIL() << "no exception";
  } catch (const fme::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(d / "nope"), std::string::npos) << e.what();
  }
}

TEST(ReadFile, DirectoryIsAnError) {
  TempDir d;
  EXPECT_THROW(fme::read_file(d.path), fme::IoError);
}

TEST(MappedFile, MapsTheWholeFile) {
  TempDir d;
  put(d / "f", "hello world");
  auto m = fme::MappedFile::open(d / "f");
  ASSERT_EQ(m->size(), 11u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), "hello world");
  EXPECT_EQ(m->path(), d / "f");
}

TEST(MappedFile, EmptyFileHasSizeZero) {
  TempDir d;
  put(d / "e", "");
  auto m = fme::MappedFile::open(d / "e");
  EXPECT_EQ(m->size(), 0u);
}

TEST(MappedFile, MissingFileIsIoError) {
  TempDir d;
  EXPECT_THROW(fme::MappedFile::open(d / "nope"), fme::IoError);
  EXPECT_THROW(fme::MappedFile::open(d.path), fme::IoError);
}

TEST(AtomicFile, CommitPublishesAndLeavesNoTemp) {
  TempDir d;
  {
    fme::AtomicFile f(d / "out");
    f.write("abc");
    f.write(std::string_view("def"));
    EXPECT_EQ(f.bytes_written(), 6u);
    EXPECT_FALSE(fs::exists(d / "out"));  // invisible until commit
    f.commit();
  }
  EXPECT_EQ(fme::read_file(d / "out"), "abcdef");
  EXPECT_EQ(d.count(), 1u);  // only "out": the temp file was renamed, not copied
}

TEST(AtomicFile, DestroyWithoutCommitRemovesTempAndKeepsOld) {
  TempDir d;
  put(d / "out", "old");
  {
    fme::AtomicFile f(d / "out");
    f.write("new content");
    EXPECT_EQ(d.count(), 2u);  // the temp file exists while writing
  }
  EXPECT_EQ(fme::read_file(d / "out"), "old");
  EXPECT_EQ(d.count(), 1u);
}

TEST(AtomicFile, DestroyWithoutCommitCreatesNothing) {
  TempDir d;
  { fme::AtomicFile f(d / "out"); f.write("x"); }
  EXPECT_EQ(d.count(), 0u);
}

TEST(AtomicFile, TwoWritersOfOnePathDoNotShareATempFile) {
  TempDir d;
  fme::AtomicFile a(d / "out"), b(d / "out");
  a.write("aaaa");
  b.write("bb");
  b.commit();
  a.commit();
  EXPECT_EQ(fme::read_file(d / "out"), "aaaa");
  EXPECT_EQ(d.count(), 1u);
}

TEST(AtomicFile, WriteOrCommitAfterCommitIsAnError) {
  TempDir d;
  fme::AtomicFile f(d / "out");
  f.commit();
  EXPECT_THROW(f.write("x"), fme::IoError);
  EXPECT_THROW(f.commit(), fme::IoError);
}

TEST(AtomicFile, UnwritableDirectoryIsIoError) {
  TempDir d;
  try {
    fme::AtomicFile f(d / "no/such/dir/out");
    FAIL() << "no exception";
  } catch (const fme::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/out"), std::string::npos) << e.what();
  }
}

TEST(WriteFileAtomic, ReplacesContent) {
  TempDir d;
  put(d / "f", "old old old");
  fme::write_file_atomic(d / "f", "new");
  EXPECT_EQ(fme::read_file(d / "f"), "new");
  EXPECT_EQ(d.count(), 1u);
}

}  // namespace
