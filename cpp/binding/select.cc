#include "select.h"

#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "channel.h"
#include "channel_ops.h"
#include "loop_waiter.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

using internal::Waiter;

struct SelectOps {
  std::vector<std::shared_ptr<CoreChannel>> channels;
  std::vector<Ref> items;
};

SelectOps select_ops(const std::vector<PyChannel*>& channels, const pyb::list& items) {
  if (channels.empty()) throw pyb::value_error("offload: select() needs at least one operation");
  if (channels.size() != items.size()) throw std::logic_error("offload: select ops mismatch");
  SelectOps ops;
  for (std::size_t i = 0; i < channels.size(); ++i) {
    ops.channels.push_back(channels[i]->core());
    ops.items.push_back(Ref::borrow(pyb::handle(items[i]).ptr()));
  }
  return ops;
}

// (index, item, closed), or None when nothing happened.
pyb::object select_outcome(std::vector<CoreOp>& ops, int done) {
  if (done < 0) return pyb::none();
  CoreOp& op = ops[static_cast<std::size_t>(done)];
  pyb::object item = op.is_send ? pyb::none() : take_item(op);
  return pyb::make_tuple(done, item, op.closed);
}

}  // namespace

void bind_select(pyb::module_& m) {
  m.def("select_waiter",
        [](const std::vector<PyChannel*>& channels, const pyb::list& items,
           std::shared_ptr<Notifier> notifier, const pyb::object& future, const pyb::tuple& pins) {
          // `pins`: the distinct Python channels of the select, each pinning the future once.
          SelectOps ops = select_ops(channels, items);
          return start_loop_waiter(std::move(ops.channels), std::move(ops.items),
                                   std::move(notifier), future, pins);
        });
  m.def("select_blocking", [](const std::vector<PyChannel*>& channels, const pyb::list& items,
                              const pyb::object& timeout) {
    SelectOps spec = select_ops(channels, items);
    std::vector<CoreOp> ops = core_ops(spec.channels, spec.items);
    const int done = wait_blocking(ops.data(), static_cast<int>(ops.size()), timeout);
    if (done == Waiter::kAborted) raise_timeout("select");
    return select_outcome(ops, done);
  });
  m.def("select_nowait", [](const std::vector<PyChannel*>& channels, const pyb::list& items) {
    SelectOps spec = select_ops(channels, items);
    std::vector<CoreOp> ops = core_ops(spec.channels, spec.items);
    return select_outcome(ops, CoreSelect::start(ops.data(), static_cast<int>(ops.size()), nullptr));
  });
}

}  // namespace offload::py
