// Progress inside an epoch (Note in train/metrics.h): plain lines for logs and mpirun, a bar
// redrawn in place for a terminal, nothing when off.

#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "train/metrics.h"

namespace ddp {
namespace {

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Progress, LinesEveryIntervalButNotForTheEpochsLastStep) {
  std::ostringstream out;
  ProgressBar progress(out, ProgressMode::kLines, std::chrono::seconds(0));
  progress.start(2, 5, 4);
  for (int step = 1; step <= 4; ++step) progress.update(step, 0.5);
  progress.clear();
  const std::string text = out.str();
  EXPECT_EQ(count(text, "\n"), 3) << text;  // steps 1-3; the epoch line reports step 4
  EXPECT_NE(text.find("Epoch 2/5 - 3/4 steps - loss: 0.5000 (rank 0) - "), std::string::npos)
      << text;
  EXPECT_EQ(text.find('\r'), std::string::npos) << "no carriage returns in a log";
}

TEST(Progress, LinesWaitForTheInterval) {
  std::ostringstream out;
  ProgressBar progress(out, ProgressMode::kLines);  // 10 s: a short epoch prints nothing
  progress.start(1, 1, 100);
  for (int step = 1; step <= 100; ++step) progress.update(step, 1.0);
  EXPECT_EQ(out.str(), "");
}

TEST(Progress, BarRedrawsInPlaceAndOffPrintsNothing) {
  std::ostringstream bar_out, off_out;
  ProgressBar bar(bar_out, ProgressMode::kBar), off(off_out, ProgressMode::kOff);
  for (ProgressBar* p : {&bar, &off}) {
    p->start(1, 1, 2);
    p->update(2, 0.25);
    p->clear();
  }
  EXPECT_NE(bar_out.str().find("\rEpoch 1/1 2/2 [==============================] - loss: 0.2500"),
            std::string::npos)
      << bar_out.str();
  EXPECT_EQ(bar_out.str().find('\n'), std::string::npos);
  EXPECT_EQ(off_out.str(), "");
}

// The run's last line: with epochs left unevaluated (training.validation_freq), the val_ values
// are the last evaluated epoch's, named, and the best epoch is among the evaluated ones.
TEST(Progress, SummaryJudgesTheEvaluatedEpochs) {
  std::vector<EpochRecord> records(3);
  for (int e = 0; e < 3; ++e) {
    records[e].epoch = e + 1;
    records[e].epochs = 3;
    records[e].loss = 1.0 - 0.1 * e;
    records[e].metrics = {{"accuracy", 0.5 + 0.1 * e}};
  }
  records[1].val_loss = 0.7;
  records[1].val_metrics = {{"accuracy", 0.6}};
  const std::string line = format_summary(records, 1.0);
  EXPECT_NE(line.find("final loss 0.8000, accuracy 0.7000, val_loss 0.7000, val_accuracy 0.6000 "
                      "(epoch 2); best val_accuracy 0.6000 at epoch 2"),
            std::string::npos)
      << line;
  for (EpochRecord& r : records) r.metrics = r.val_metrics = {};  // judged by the loss
  const std::string by_loss = format_summary(records, 1.0);
  EXPECT_NE(by_loss.find("best val_loss 0.7000 at epoch 2"), std::string::npos) << by_loss;
}

}  // namespace
}  // namespace ddp
