// Tests of ARC task parsing: strict validation with messages naming file and field, directory and JSONL
// streams, and the whole shared ARC-AGI training and evaluation sets.
#include <gtest/gtest.h>

#include "data/arc_task.h"
#include "data_test_helpers.h"
#include "util/error.h"

namespace {

using fme::FormatError;
using fme_data_test::error_of;
using fme_data_test::kData;
using fme_data_test::TempDir;
using fme_data_test::write_text;
namespace arc = fme::arc;

const char* kGood = R"({"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
                        "test": [{"input": [[5, 6]]}]})";

// Error message of reading `content` as the task file x.json.
std::string file_error(const std::string& content) {
  TempDir dir;
  const std::string path = dir / "x.json";
  write_text(path, content);
  return error_of<FormatError>([&] { arc::read_task_file(path); });
}

TEST(ArcTask, ParsesAGoodTask) {
  arc::Task t = arc::parse_task_text(kGood, "good", "good.json");
  EXPECT_EQ(t.id, "good");
  ASSERT_EQ(t.train.size(), 1u);
  EXPECT_EQ(t.train[0].input, (arc::Grid{{1, 2}, {3, 4}}));
  EXPECT_EQ(t.train[0].output, (arc::Grid{{4, 3}, {2, 1}}));
  ASSERT_EQ(t.test.size(), 1u);
  EXPECT_EQ(t.test[0].input, (arc::Grid{{5, 6}}));
  EXPECT_FALSE(t.test[0].output.has_value());
  EXPECT_EQ(arc::grid_to_json(t.train[0].input).dump(), "[[1,2],[3,4]]");
}

TEST(ArcTask, ReadsAnArcAgiFileWithIdFromStem) {
  arc::Task t = arc::read_task_file(kData + "/arc-agi/training/007bbfb7.json");
  EXPECT_EQ(t.id, "007bbfb7");
  EXPECT_EQ(t.train.size(), 5u);
  ASSERT_EQ(t.test.size(), 1u);
  ASSERT_TRUE(t.test[0].output.has_value());
  EXPECT_EQ(arc::height(*t.test[0].output), 9u);
  EXPECT_EQ(arc::width(t.test[0].input), 3u);
}

TEST(ArcTask, BadInputsNameFileAndField) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos
               ? ::testing::AssertionSuccess()
               : ::testing::AssertionFailure() << "'" << msg << "' lacks '" << part << "'";
  };
  std::string m = file_error("{not json");
  EXPECT_TRUE(has(m, "x.json")) << m;
  EXPECT_TRUE(has(m, "not valid JSON")) << m;

  m = file_error(R"({"test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "x.json: field 'train' is missing")) << m;

  m = file_error(R"({"train": [{"input": [[1]], "output": [[1]]}, {"input": [[1]], "output": [[1]]},
                     {"input": [[1]], "output": [[1,2,3,4,5],[1,2,3,4,5],[1,2,3,4,5],[1,2,3,4]]}],
                     "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "x.json: train[2].output row 3 has 4 cells, expected 5")) << m;

  m = file_error(R"({"train": [{"input": [[1, 10]], "output": [[1]]}], "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "x.json: train[0].input row 0 cell 1 is 10, expected an integer 0..9")) << m;

  m = file_error(R"({"train": [{"input": [[1, -1]], "output": [[1]]}], "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "train[0].input row 0 cell 1 is -1")) << m;
  m = file_error(R"({"train": [{"input": [[1.0]], "output": [[1]]}], "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "train[0].input row 0 cell 0")) << m;

  std::string wide = "[";
  for (int i = 0; i < 31; ++i) wide += i ? ",0" : "0";
  wide += "]";
  m = file_error(R"({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [)" + wide + "]}]}");
  EXPECT_TRUE(has(m, "x.json: test[0].input row 0 has 31 cells, expected 1..30")) << m;

  std::string tall = "[";
  for (int i = 0; i < 31; ++i) tall += i ? ",[0]" : "[0]";
  tall += "]";
  m = file_error(R"({"train": [{"input": )" + tall + R"(, "output": [[1]]}], "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "x.json: train[0].input has 31 rows, expected 1..30")) << m;

  m = file_error(R"({"train": [{"input": [[1]], "output": [[1]]}], "test": []})");
  EXPECT_TRUE(has(m, "x.json: 'test' is empty")) << m;

  m = file_error(R"({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": []}]})");
  EXPECT_TRUE(has(m, "x.json: test[0].input is empty")) << m;

  m = file_error(R"({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[]]}]})");
  EXPECT_TRUE(has(m, "x.json: test[0].input row 0 has 0 cells")) << m;

  m = file_error(R"({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "x.json: train[0].output is missing")) << m;

  m = file_error(R"({"train": {"input": [[1]]}, "test": [{"input": [[1]]}]})");
  EXPECT_TRUE(has(m, "x.json: 'train' must be an array")) << m;

  m = file_error(R"({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": [1]}]})");
  EXPECT_TRUE(has(m, "x.json: test[0].output row 0 must be an array of cells")) << m;

  m = file_error(R"({"train": [], "test": [], "train": []})");
  EXPECT_TRUE(has(m, "duplicate key 'train'")) << m;

  m = file_error("[1, 2]");
  EXPECT_TRUE(has(m, "x.json: a task must be a JSON object")) << m;
}

TEST(ArcTask, JsonlStreamsTasksAndNamesTheBadLine) {
  TempDir dir;
  const std::string path = dir / "tasks.jsonl";
  const std::string good = R"({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})";
  const std::string named =
      R"({"task_id": "abc", "train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})";
  const std::string ragged = R"({"train": [{"input": [[1], [1, 2]], "output": [[2]]}], "test": [{"input": [[3]]}]})";
  write_text(path, good + "\n" + named + "\r\n" + ragged + "\n" + good + "\n");

  arc::TaskReader reader(path);
  arc::Task t;
  ASSERT_TRUE(reader.next(t));
  EXPECT_EQ(t.id, "line 1");
  ASSERT_TRUE(reader.next(t));
  EXPECT_EQ(t.id, "abc");
  std::string m = error_of<FormatError>([&] { reader.next(t); });
  EXPECT_NE(m.find("tasks.jsonl line 3: train[0].input row 1 has 2 cells, expected 1"), std::string::npos) << m;

  // Blank lines are skipped but still counted, so ids and messages match an editor's line numbers.
  write_text(path, good + "\n\n" + good + "\n" + "{oops\n");
  std::vector<std::string> ids;
  m = error_of<FormatError>([&] { arc::for_each_task(path, [&](arc::Task&& task) { ids.push_back(task.id); }); });
  EXPECT_EQ(ids, (std::vector<std::string>{"line 1", "line 3"}));
  EXPECT_NE(m.find("tasks.jsonl line 4"), std::string::npos) << m;

  write_text(path, R"({"task_id": 7, "train": [], "test": []})");
  m = error_of<FormatError>([&] { arc::for_each_task(path, [](arc::Task&&) {}); });
  EXPECT_NE(m.find("line 1: 'task_id' must be a string"), std::string::npos) << m;
}

TEST(ArcTask, DirectoryIsReadSortedWithStemIds) {
  TempDir dir;
  const std::string good = R"({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})";
  write_text(dir / "b.json", good);
  write_text(dir / "a.json", good);
  write_text(dir / "notes.txt", "not a task");
  std::vector<std::string> ids;
  arc::for_each_task(dir.path, [&](arc::Task&& t) { ids.push_back(t.id); });
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_THROW(arc::list_task_files(dir / "missing"), fme::IoError);
}

TEST(ArcTask, WholeArcAgiSetsParse) {
  size_t training = 0, evaluation = 0, tests = 0;
  std::string first, last;
  arc::for_each_task(kData + "/arc-agi/training", [&](arc::Task&& t) {
    if (training++ == 0) first = t.id;
    tests += t.test.size();
  });
  arc::for_each_task(kData + "/arc-agi/evaluation", [&](arc::Task&& t) {
    ++evaluation;
    last = t.id;
    tests += t.test.size();
  });
  EXPECT_EQ(training, 400u);
  EXPECT_EQ(evaluation, 400u);
  EXPECT_EQ(first, "007bbfb7");
  EXPECT_GE(tests, 800u);
}

TEST(ArcTask, BuiltInDemoTasksParse) {
  std::vector<std::string> ids;
  arc::for_each_task(std::string(FME_SOURCE_DIR) + "/assets/arc-tasks", [&](arc::Task&& t) { ids.push_back(t.id); });
  EXPECT_EQ(ids, (std::vector<std::string>{"5582e5ca", "6150a2bd", "d037b0a7", "e9afcf9a"}));
}

}  // namespace
