import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The paper's perturbation chart: edit a node or a supernode (ablate, or scale by a factor;
// a negative one suppresses) and see every node it has an edge into, and the logits, after the
// edit, as a fraction of their activity before. Per node, four bars: what the graph predicts
// and what the replacement model does, with attention, norms and the other features frozen
// (constrained: direct edges, exact) and running on (free: path sums through the graph).
Item {
    id: view
    clip: true

    required property ExplorerController explorer
    readonly property ExplorerValidation validation: explorer.validation
    // The chart's range, as a fraction of the activity before the edit.
    readonly property real low: -1
    readonly property real high: 2
    readonly property var series: [
        { key: "predictedConstrained", name: "graph · constrained", color: Theme.dark ? "#93b5e6" : "#a9c4ea" },
        { key: "actualConstrained", name: "model · constrained", color: Theme.dark ? "#5b8ee8" : "#2f6db5" },
        { key: "predictedFree", name: "graph · free (path sums)", color: Theme.dark ? "#f0c193" : "#f3c597" },
        { key: "actualFree", name: "model · free", color: Theme.dark ? "#ec9a55" : "#d9731f" }
    ]

    function xOf(value, width) {
        const v = Math.max(view.low, Math.min(view.high, value))
        return (v - view.low) / (view.high - view.low) * width
    }

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.padding
        spacing: Theme.spacing

        Label {
            visible: !view.explorer.interventionsAvailable
            Layout.fillWidth: true
            wrapMode: Text.Wrap
            text: "Perturbations need the traced prompt on the open model: trace a prompt, or open a graph of this model."
            color: Theme.textMuted
        }

        GridLayout {
            Layout.fillWidth: true
            columns: 2
            columnSpacing: Theme.spacing
            rowSpacing: 4
            enabled: view.explorer.interventionsAvailable
            Label {
                text: "Edit"
                color: Theme.textMuted
            }
            ComboBox {
                id: target
                objectName: "perturbationTarget"
                Layout.fillWidth: true
                model: {
                    const items = []
                    if (view.explorer.selectedId !== "" && view.explorer.selectedKind === "feature")
                        items.push({ text: view.explorer.selectedTitle, value: view.explorer.selectedId })
                    for (const name of view.explorer.supernodeNames)
                        items.push({ text: "Supernode: " + name, value: "supernode:" + name })
                    return items
                }
                textRole: "text"
                valueRole: "value"
            }
            Label {
                text: "By"
                color: Theme.textMuted
            }
            RowLayout {
                Layout.fillWidth: true
                ComboBox {
                    id: op
                    objectName: "perturbationOp"
                    model: ["Ablate", "Scale ×"]
                }
                TextField {
                    id: factor
                    objectName: "perturbationFactor"
                    visible: op.currentIndex === 1
                    Layout.preferredWidth: 60
                    text: "-1"
                    validator: DoubleValidator {}
                    selectByMouse: true
                }
                Item {
                    Layout.fillWidth: true
                }
                Button {
                    objectName: "perturbButton"
                    text: "Show effects"
                    enabled: target.currentIndex >= 0 && !view.validation.perturbing
                    onClicked: view.validation.perturb(target.currentValue, op.currentIndex === 0 ? "ablate" : "scale",
                                                       Number(factor.text))
                }
            }
        }

        Label {
            objectName: "perturbationText"
            visible: text !== ""
            Layout.fillWidth: true
            text: view.validation.perturbationText
            wrapMode: Text.Wrap
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        }

        Flow {
            Layout.fillWidth: true
            spacing: 10
            visible: view.validation.perturbation.length > 0
            Repeater {
                model: view.series
                delegate: Row {
                    required property var modelData
                    spacing: 4
                    Rectangle {
                        width: 10
                        height: 10
                        anchors.verticalCenter: parent.verticalCenter
                        color: parent.modelData.color
                    }
                    Label {
                        text: parent.modelData.name
                        color: Theme.textMuted
                        font.pointSize: Theme.smallSize
                    }
                }
            }
        }

        // The axis: -100% .. 200% of the activity before, with 0 and 100% marked.
        Item {
            id: axis
            Layout.fillWidth: true
            Layout.leftMargin: 176
            Layout.preferredHeight: 14
            visible: view.validation.perturbation.length > 0
            Repeater {
                model: [-1, 0, 1, 2]
                delegate: Label {
                    required property real modelData
                    x: view.xOf(modelData, axis.width) - width / 2
                    text: (modelData * 100).toFixed(0) + "%"
                    color: Theme.textFaint
                    font.pointSize: Theme.smallSize - 1
                }
            }
        }

        ListView {
            id: chart
            objectName: "perturbationChart"
            Layout.fillWidth: true
            Layout.fillHeight: true
            Layout.minimumHeight: 120
            clip: true
            spacing: 4
            model: view.validation.perturbation
            ScrollBar.vertical: ScrollBar {}
            delegate: RowLayout {
                id: entry
                required property var modelData
                width: ListView.view.width
                spacing: 6
                Label {
                    Layout.preferredWidth: 170
                    text: entry.modelData.title
                    elide: Text.ElideRight
                    color: Theme.text
                    font.bold: entry.modelData.kind === "logit"
                    font.pointSize: Theme.smallSize
                    ToolTip.visible: hover.hovered
                    ToolTip.text: entry.modelData.title + "\n" + entry.modelData.nodeId + "\nbefore: "
                                  + entry.modelData.initial.toFixed(3)
                                  + "\ngraph · constrained " + (entry.modelData.predictedConstrained * 100).toFixed(1) + "%"
                                  + "\nmodel · constrained " + (entry.modelData.actualConstrained * 100).toFixed(1) + "%"
                                  + "\ngraph · free " + (entry.modelData.predictedFree * 100).toFixed(1) + "%"
                                  + "\nmodel · free " + (entry.modelData.actualFree * 100).toFixed(1) + "%"
                    HoverHandler {
                        id: hover
                    }
                }
                Item {
                    id: bars
                    Layout.fillWidth: true
                    Layout.preferredHeight: 4 * 6 + 2
                    Rectangle { // the track
                        anchors.fill: parent
                        color: Theme.barTrack
                        radius: 2
                    }
                    Repeater {
                        model: view.series
                        delegate: Rectangle {
                            required property var modelData
                            required property int index
                            readonly property real value: entry.modelData[modelData.key]
                            readonly property real zero: view.xOf(0, bars.width)
                            readonly property real end: view.xOf(value, bars.width)
                            x: Math.min(zero, end)
                            y: 1 + index * 6
                            width: Math.max(1, Math.abs(end - zero))
                            height: 5
                            color: modelData.color
                        }
                    }
                    Rectangle { // 0: the activity gone
                        x: view.xOf(0, bars.width)
                        width: 1
                        height: parent.height
                        color: Theme.textFaint
                    }
                    Rectangle { // 100%: unchanged
                        x: view.xOf(1, bars.width)
                        width: 1
                        height: parent.height
                        color: Theme.textMuted
                    }
                }
                Label {
                    Layout.preferredWidth: 42
                    horizontalAlignment: Text.AlignRight
                    text: (entry.modelData.actualFree * 100).toFixed(0) + "%"
                    font.family: Theme.monoFamily
                    font.pointSize: Theme.smallSize
                    color: Theme.textMuted
                }
            }
        }
        BusyIndicator {
            running: view.validation.perturbing
            visible: running
            Layout.alignment: Qt.AlignHCenter
        }
    }
}
