// An intrusive FIFO: the element carries its own links (a ListHook), so it
// can leave the list in O(1) from wherever it is, and its destructor unlinks
// it. A list can never hold a pointer to an element that is gone, which is
// how the send scheduler's ready list used to go wrong (STYLE.md pitfall 7).
// Pure; not thread-safe. [one thread]
#pragma once

#include <cstddef>

namespace tws {

class ListHook {
 public:
  ListHook() = default;
  ListHook(const ListHook&) = delete;
  ListHook& operator=(const ListHook&) = delete;
  ~ListHook() { unlink(); }

  bool linked() const { return owner_ != nullptr; }

  // Leaves the list it is on, if any.
  void unlink();

 private:
  template <class T, ListHook T::*>
  friend class IntrusiveList;
  struct Links {
    ListHook* head = nullptr;
    ListHook* tail = nullptr;
    size_t size = 0;
  };
  ListHook* prev_ = nullptr;
  ListHook* next_ = nullptr;
  Links* owner_ = nullptr;
  void* item_ = nullptr;  // the element this hook is a member of
};

inline void ListHook::unlink() {
  if (!owner_) return;
  if (prev_) prev_->next_ = next_;
  else owner_->head = next_;
  if (next_) next_->prev_ = prev_;
  else owner_->tail = prev_;
  owner_->size--;
  prev_ = next_ = nullptr;
  owner_ = nullptr;
  item_ = nullptr;
}

// A FIFO of T linked through the member `Hook`. The list does not own its
// elements; an element that is destroyed (or unlinked) simply leaves it.
template <class T, ListHook T::*Hook>
class IntrusiveList {
 public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() { clear(); }

  bool empty() const { return links_.size == 0; }
  size_t size() const { return links_.size; }

  // Appends `t` unless it is already on this list; false when it was.
  bool push_back(T* t) {
    ListHook& h = t->*Hook;
    if (h.owner_ == &links_) return false;
    h.unlink();
    h.owner_ = &links_;
    h.item_ = t;
    h.prev_ = links_.tail;
    h.next_ = nullptr;
    if (links_.tail) links_.tail->next_ = &h;
    else links_.head = &h;
    links_.tail = &h;
    links_.size++;
    return true;
  }

  // Removes and returns the first element, or nullptr.
  T* pop_front() {
    if (!links_.head) return nullptr;
    ListHook* h = links_.head;
    T* t = static_cast<T*>(h->item_);
    h->unlink();
    return t;
  }

  void clear() {
    while (links_.head) links_.head->unlink();
  }

 private:
  ListHook::Links links_;
};

}  // namespace tws
